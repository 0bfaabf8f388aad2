{#- restic, only with a backup_repository (docs/backup.md: why restic). -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/backup/map.jinja" import backup with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- call stage("install", "chatmail-backup-package-skipped", when=backup.enabled,
               reason="stage not selected or no backup_repository") %}

chatmail-backup-restic-pkg-installed:
  pkg.installed:
    - name: restic

{%- endcall %}
