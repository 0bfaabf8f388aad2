{#- The backup timer stops; its units and the launcher go.  The password
    (/etc/chatmail-backup) and the repository stay: they are data. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- from "chatmail/backup/map.jinja" import backup with context %}
{%- from "chatmail/clean.jinja" import cleaned %}
{{ cleaned("backup",
    units=["chatmail-backup.timer", "chatmail-backup.service"],
    unit_files=[backup.timer_file, backup.service_file],
    paths={"launcher": salt["file.dirname"](backup.launcher)}) }}
