{#- The local resolver's settings, in a drop-in next to Debian's own
    (remote control, auto trust anchor).  Validated with unbound-checkconf
    before it replaces the live file. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- from "chatmail/libtofs.jinja" import files_switch with context %}
{%- if "configure" in chatmail.stages %}

include:
  - chatmail.unbound.package

chatmail-unbound-chatmail-conf-file-managed:
  file.managed:
    - name: /etc/unbound/unbound.conf.d/chatmail.conf
    - source: {{ files_switch("unbound", "chatmail.conf.j2", "chatmail-unbound-chatmail-conf-file-managed") }}
    - template: jinja
    - context:
        chatmail: {{ chatmail | json }}
    - user: root
    - group: root
    - mode: "0644"
    - check_cmd: /usr/sbin/unbound-checkconf
    - require:
      - sls: chatmail.unbound.package

{%- else %}

chatmail-unbound-config-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
