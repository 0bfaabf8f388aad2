{#- OpenDKIM signs outgoing mail and bounces; it verifies nothing (incoming
    DKIM is checked by the incoming filter, chatmaild.dkimcheck).  Its
    signing key is generated once and never replaced; opendkim.conf is
    checked with `opendkim -n` (which also loads the tables, so those are in
    place first). #}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage, daemon_reload with context %}
{%- set opendkim = params.opendkim %}
{%- from "chatmail/libtofs.jinja" import files_switch with context %}
{%- set domain = chatmail.mail_domain %}
{%- set keyname = "opendkim._domainkey." ~ domain %}
{%- set keydir_id = "chatmail-opendkim-" ~ (opendkim.keydir | replace("/", "-") | trim("-")) ~ "-file-directory" %}
{%- call stage("configure", "chatmail-opendkim-config-skipped") %}

include:
  - chatmail.opendkim.package

{%- for path, mode in [(opendkim.keydir, "0700"), (opendkim.conf_dir, "0750"), (opendkim.socket_dir, "0750")] %}

chatmail-opendkim-{{ path | replace("/", "-") | trim("-") }}-file-directory:
  file.directory:
    - name: {{ path }}
    - user: {{ opendkim.user }}
    - group: {{ opendkim.user }}
    - mode: "{{ mode }}"
    - makedirs: true
    - require:
      - sls: chatmail.opendkim.package
{%- endfor %}

chatmail-opendkim-signing-key-present:
  chatmail_dkim.key_present:
    - name: opendkim
    - domain: {{ domain }}
    - keydir: {{ opendkim.keydir }}
    - require:
      - file: {{ keydir_id }}

{%- for name, line in [
    ("KeyTable", keyname ~ " " ~ domain ~ ":opendkim:" ~ opendkim.keydir ~ "/opendkim.private"),
    ("SigningTable", "*@" ~ domain ~ " " ~ keyname),
] %}

chatmail-opendkim-{{ name | lower }}-file-managed:
  file.managed:
    - name: {{ opendkim.keydir }}/{{ name }}
    - contents: {{ line | yaml_encode }}
    - user: {{ opendkim.user }}
    - group: {{ opendkim.user }}
    - mode: "0644"
    - require:
      - file: {{ keydir_id }}
{%- endfor %}

{#- Earlier versions verified incoming mail here (Lua policies, and a
    resolver config for dns_forward_zones); the incoming filter does that
    now (chatmaild.dkimcheck), so those files go. #}
{%- for name in ("screen.lua", "final.lua", "resolver.conf") %}

chatmail-opendkim-{{ name | replace(".", "-") }}-file-absent:
  file.absent:
    - name: {{ opendkim.conf_dir }}/{{ name }}
{%- endfor %}

chatmail-opendkim-conf-file-managed:
  file.managed:
    - name: {{ opendkim.conf }}
    - source: {{ files_switch("opendkim", "opendkim.conf.j2", "chatmail-opendkim-conf-file-managed") }}
    - template: jinja
    - context:
        chatmail: {{ chatmail | json }}
        opendkim: {{ {"keydir": opendkim.keydir, "socket_dir": opendkim.socket_dir} | json }}
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
    - name: {{ opendkim.dropin }}
    - source: {{ files_switch("opendkim", "10-prevent-memory-leak.conf", "chatmail-opendkim-dropin-file-managed") }}
    - user: root
    - group: root
    - mode: "0644"
    - makedirs: true
{{ daemon_reload("opendkim", ["chatmail-opendkim-dropin-file-managed"]) }}

{%- endcall %}
