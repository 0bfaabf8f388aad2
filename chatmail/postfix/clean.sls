{#- Postfix stops (after self-healing, which would restart it); main.cf,
    master.cf (Debian's files, replaced by the formula: they go too, see
    docs/clean.md), the tables, the config checker and the drop-in go.
    Mail still in Postfix's queue stays in /var/spool/postfix. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- from "chatmail/clean.jinja" import cleaned %}
{{ cleaned("postfix",
    after=["chatmail.selfheal.clean"],
    units=["postfix"],
    unit_files=["/etc/systemd/system/postfix@.service.d/10_restart.conf"],
    paths=["/etc/postfix/main.cf", "/etc/postfix/master.cf", "/etc/postfix/login_map",
           "/etc/postfix/submission_header_cleanup", "/usr/local/sbin/chatmail-postfix-check"]) }}
