{#- restic, only with a backup_repository (docs/backup.md: why restic). -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- from "chatmail/backup/map.jinja" import backup with context %}
{%- if "install" in chatmail.stages and backup.enabled %}

chatmail-backup-restic-pkg-installed:
  pkg.installed:
    - name: restic

{%- else %}

chatmail-backup-package-skipped:
  test.nop:
    - name: stage not selected or no backup_repository
{%- endif %}
