{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- if "configure" in chatmail.stages %}

include:
  - chatmail.base.package

chatmail-base-mailname-file-managed:
  file.managed:
    - name: /etc/mailname
    - contents: {{ chatmail.mail_domain }}
    - user: root
    - group: root
    - mode: "0644"

chatmail-base-mailboxes-dir-directory:
  file.directory:
    - name: {{ chatmail.mailboxes_dir }}
    - user: vmail
    - group: vmail
    - mode: "0700"
    - makedirs: true
    - require:
      - sls: chatmail.base.package

{%- else %}

chatmail-base-config-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
