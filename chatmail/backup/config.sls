{#- The backup job: a launcher for the Salt that applied the formula, a
    oneshot service that runs chatmail.backup, its timer.  Only with a
    backup_repository; without one service.sls removes them (after
    stopping the timer).  The repository password is made by the first
    backup, not here, and is never removed by the formula. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/libtofs.jinja" import files_switch with context %}
{%- from "chatmail/backup/map.jinja" import backup with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- call stage("configure", "chatmail-backup-config-skipped", when=backup.enabled,
               reason="stage not selected or no backup_repository") %}
{%-   for thing, path, template, mode in [
  ("launcher", backup.launcher, "salt-call.j2", "0755"),
  ("service", backup.service_file, "chatmail-backup.service.j2", "0644"),
  ("timer", backup.timer_file, "chatmail-backup.timer.j2", "0644"),
] %}

chatmail-backup-{{ thing }}-file-managed:
  file.managed:
    - name: {{ path }}
    - source: {{ files_switch("backup", template, "chatmail-backup-" ~ thing ~ "-file-managed") }}
    - template: jinja
    - context:
        backup: {{ backup | json }}
    - user: root
    - group: root
    - mode: "{{ mode }}"
    - makedirs: true
{%-     if thing == "timer" %}
    # a calendar systemd cannot parse would leave the timer silently idle
    - check_cmd: /bin/sh -c 'systemd-analyze calendar "$(sed -n "s/^OnCalendar=//p" "$0")" >/dev/null'
{%-     endif %}
{%-   endfor %}

{%- endcall %}
