{#- coturn stops; its config, the assembling script and the drop-in go.
    The secret (/etc/chatmail-turn) stays: credentials handed out with it
    keep working after a rebuild. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- from "chatmail/clean.jinja" import cleaned %}
{{ cleaned("turn",
    units=["coturn"],
    unit_files=["/etc/systemd/system/coturn.service.d/chatmail.conf"],
    paths=["/etc/turnserver.conf", "/usr/local/sbin/chatmail-turn-config"]) }}
