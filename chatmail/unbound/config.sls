{#- The local resolver's settings, in a drop-in next to Debian's own
    (remote control, auto trust anchor).  Validated with unbound-checkconf
    before it replaces the live file. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage, daemon_reload with context %}
{%- from "chatmail/libtofs.jinja" import files_switch with context %}
{%- call stage("configure", "chatmail-unbound-config-skipped") %}

include:
  - chatmail.unbound.package

chatmail-unbound-chatmail-conf-file-managed:
  file.managed:
    - name: {{ params.unbound.conf }}
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

chatmail-unbound-dropin-file-managed:
  file.managed:
    - name: {{ params.unbound.dropin }}
    - source: {{ files_switch("unbound", "unbound-dropin.conf", "chatmail-unbound-dropin-file-managed") }}
    - user: root
    - group: root
    - mode: "0644"
    - makedirs: true
{{ daemon_reload("unbound", ["chatmail-unbound-dropin-file-managed"]) }}

{%- endcall %}
