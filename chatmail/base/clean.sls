{#- /etc/mailname and the retry unit go; the vmail user and the mailboxes
    (mailboxes_dir) stay: data is never removed. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/clean.jinja" import cleaned with context %}
{{ cleaned("base", unit_files=[params.base.retry_unit], paths=[params.base.mailname]) }}
