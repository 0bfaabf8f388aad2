{#- The backup timer runs with a backup_repository; without one it stops
    and its files go (the password and the repository stay). -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/backup/map.jinja" import backup with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- from "chatmail/service.jinja" import service with context %}
{%- call stage("activate", "chatmail-backup-service-skipped") %}

include:
  - chatmail.backup.config
{#- the timer keeps the schedule it was started with: restarted when its
    unit file is newer (the job's service and launcher are read afresh by
    each run of the job) -#}
{{ service("chatmail-backup-timer-service", params.backup.unit, running=backup.enabled,
    watch=["sls: chatmail.backup.config"], stale=[backup.timer_file], dead_onlyif="test -e " ~ backup.timer_file) }}
{%-   if not backup.enabled %}
{%-     for thing, path in [("launcher", salt["file.dirname"](backup.launcher)),
                            ("service", backup.service_file), ("timer", backup.timer_file)] %}

chatmail-backup-{{ thing }}-file-absent:
  file.absent:
    - name: {{ path }}
    - require:
      - service: chatmail-backup-timer-service-dead
{%-     endfor %}
{%-   endif %}

{%- endcall %}
