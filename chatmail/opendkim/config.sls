{#- OpenDKIM: signing key (generated once, never replaced), its tables, the
    Lua policies, and opendkim.conf, which is checked with `opendkim -n`
    (that also loads the tables and compiles the Lua scripts, so those are
    in place first). #}
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

{%- for name in ("screen.lua", "final.lua") %}

chatmail-opendkim-{{ name | replace(".", "-") }}-file-managed:
  file.managed:
    - name: /etc/opendkim/{{ name }}
    - source: {{ files_switch("opendkim", name, "chatmail-opendkim-" ~ (name | replace(".", "-")) ~ "-file-managed") }}
    - user: root
    - group: root
    - mode: "0644"
    - require:
      - file: chatmail-opendkim-etc-opendkim-file-directory
{%- endfor %}

{#- dns_forward_zones for the resolver built into OpenDKIM (see the file) #}
chatmail-opendkim-resolver-conf-file-{{ "managed" if chatmail.dns_forward_zones else "absent" }}:
{%- if chatmail.dns_forward_zones %}
  file.managed:
    - name: /etc/opendkim/resolver.conf
    - source: {{ files_switch("opendkim", "resolver.conf.j2", "chatmail-opendkim-resolver-conf-file-managed") }}
    - template: jinja
    - context:
        chatmail: {{ chatmail | json }}
    - user: root
    - group: root
    - mode: "0644"
    - check_cmd: unbound-checkconf
    - require:
      - file: chatmail-opendkim-etc-opendkim-file-directory
{%- else %}
  file.absent:
    - name: /etc/opendkim/resolver.conf
{%- endif %}

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
      - file: chatmail-opendkim-screen-lua-file-managed
      - file: chatmail-opendkim-final-lua-file-managed
      - file: chatmail-opendkim-resolver-conf-file-{{ "managed" if chatmail.dns_forward_zones else "absent" }}

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
