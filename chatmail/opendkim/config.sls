{#- OpenDKIM signs outgoing mail and bounces; it verifies nothing (incoming
    DKIM is checked by the incoming filter, chatmaild.dkimcheck).  Its
    signing key is generated once and never replaced; opendkim.conf is
    checked with `opendkim -n` (which also loads the tables, so those are in
    place first). #}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- from "chatmail/libtofs.jinja" import files_switch with context %}
{%- set domain = chatmail.mail_domain %}
{%- set keyname = "opendkim._domainkey." ~ domain %}
{%- if "configure" in chatmail.stages %}

include:
  - chatmail.opendkim.package

{%- for path, user, mode in [
    ("/etc/dkimkeys", "opendkim", "0700"),
    ("/etc/opendkim", "opendkim", "0750"),
    ("/var/spool/postfix/opendkim", "opendkim", "0750"),
] %}

chatmail-opendkim-{{ path | replace("/", "-") | trim("-") }}-file-directory:
  file.directory:
    - name: {{ path }}
    - user: {{ user }}
    - group: opendkim
    - mode: "{{ mode }}"
    - makedirs: true
    - require:
      - sls: chatmail.opendkim.package
{%- endfor %}

chatmail-opendkim-signing-key-present:
  chatmail_dkim.key_present:
    - name: opendkim
    - domain: {{ domain }}
    - keydir: /etc/dkimkeys
    - require:
      - file: chatmail-opendkim-etc-dkimkeys-file-directory

{%- for name, line in [
    ("KeyTable", keyname ~ " " ~ domain ~ ":opendkim:/etc/dkimkeys/opendkim.private"),
    ("SigningTable", "*@" ~ domain ~ " " ~ keyname),
] %}

chatmail-opendkim-{{ name | lower }}-file-managed:
  file.managed:
    - name: /etc/dkimkeys/{{ name }}
    - contents: {{ line | yaml_encode }}
    - user: opendkim
    - group: opendkim
    - mode: "0644"
    - require:
      - file: chatmail-opendkim-etc-dkimkeys-file-directory
{%- endfor %}

{#- Earlier versions verified incoming mail here (Lua policies, and a
    resolver config for dns_forward_zones); the incoming filter does that
    now (chatmaild.dkimcheck), so those files go. #}
{%- for name in ("screen.lua", "final.lua", "resolver.conf") %}

chatmail-opendkim-{{ name | replace(".", "-") }}-file-absent:
  file.absent:
    - name: /etc/opendkim/{{ name }}
{%- endfor %}

chatmail-opendkim-conf-file-managed:
  file.managed:
    - name: /etc/opendkim.conf
    - source: {{ files_switch("opendkim", "opendkim.conf.j2", "chatmail-opendkim-conf-file-managed") }}
    - template: jinja
    - context:
        chatmail: {{ chatmail | json }}
    - user: root
    - group: root
    - mode: "0644"
    - check_cmd: opendkim -n -x
    - require:
      - chatmail_dkim: chatmail-opendkim-signing-key-present
      - file: chatmail-opendkim-keytable-file-managed
      - file: chatmail-opendkim-signingtable-file-managed

chatmail-opendkim-dropin-file-managed:
  file.managed:
    - name: /etc/systemd/system/opendkim.service.d/10-prevent-memory-leak.conf
    - source: {{ files_switch("opendkim", "10-prevent-memory-leak.conf", "chatmail-opendkim-dropin-file-managed") }}
    - user: root
    - group: root
    - mode: "0644"
    - makedirs: true

chatmail-opendkim-systemd-reload-module-run:
  module.run:
    - service.systemctl_reload: []
    - onchanges:
      - file: chatmail-opendkim-dropin-file-managed

{%- else %}

chatmail-opendkim-config-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
