{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage, daemon_reload with context %}
{%- from "chatmail/libtofs.jinja" import files_switch with context %}
{%- call stage("configure", "chatmail-base-config-skipped") %}

include:
  - chatmail.base.package

chatmail-base-mailname-file-managed:
  file.managed:
    - name: {{ params.base.mailname }}
    - contents: {{ chatmail.mail_domain }}
    - user: root
    - group: root
    - mode: "0644"

chatmail-base-mailboxes-dir-directory:
  file.directory:
    - name: {{ chatmail.mailboxes_dir }}
    - user: {{ params.base.vmail.user }}
    - group: {{ params.base.vmail.user }}
    - mode: "0700"
    - makedirs: true
    - require:
      - sls: chatmail.base.package

chatmail-base-retry-unit-file-managed:
  file.managed:
    - name: {{ params.base.retry_unit }}
    - source: {{ files_switch("base", "chatmail-retry@.service", "chatmail-base-retry-unit-file-managed") }}
    - user: root
    - group: root
    - mode: "0644"
{{ daemon_reload("base", ["chatmail-base-retry-unit-file-managed"]) }}
{%- endcall %}
