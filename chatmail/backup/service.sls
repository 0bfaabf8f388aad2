{#- The backup timer runs with a backup_repository; without one it stops
    and its files go (the password and the repository stay). -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- from "chatmail/backup/map.jinja" import backup with context %}
{%- if "activate" in chatmail.stages %}

include:
  - chatmail.backup.config
{%-   if backup.enabled %}

chatmail-backup-timer-service-running:
  service.running:
    - name: chatmail-backup.timer
    - enable: true
    - watch:
      - sls: chatmail.backup.config
{%-   else %}

chatmail-backup-timer-service-dead:
  service.dead:
    - name: chatmail-backup.timer
    - enable: false
    # never installed: nothing to stop (and a dry run has nothing to report)
    - onlyif: test -e {{ backup.timer_file }}
{%-     for thing, path in [("launcher", salt["file.dirname"](backup.launcher)),
                            ("service", backup.service_file), ("timer", backup.timer_file)] %}

chatmail-backup-{{ thing }}-file-absent:
  file.absent:
    - name: {{ path }}
    - require:
      - service: chatmail-backup-timer-service-dead
{%-     endfor %}
{%-   endif %}

{%- else %}

chatmail-backup-service-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
