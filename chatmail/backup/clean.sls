{#- The backup timer stops; its units and the launcher go.  The password
    (/etc/chatmail-backup) and the repository stay: they are data. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/backup/map.jinja" import backup with context %}
{%- from "chatmail/clean.jinja" import cleaned with context %}
{{ cleaned("backup",
    units=[params.backup.unit, params.backup.unit | replace(".timer", ".service")],
    unit_files=[backup.timer_file, backup.service_file],
    paths={"launcher": salt["file.dirname"](backup.launcher)}) }}
