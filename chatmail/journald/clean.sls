{#- The retention drop-in goes and journald restarts with Debian's
    settings.  Logs that were kept in RAM are not written back, and
    /var/log/journal (removed by the formula) is not recreated. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/clean.jinja" import cleaned, path_absent_id with context %}
{%- set dropin = params.journald.dropin %}
{{ cleaned("journald", paths=[dropin]) }}

chatmail-journald-clean-service-running:
  service.running:
    - name: {{ params.journald.unit }}
    - watch:
      - file: {{ path_absent_id("journald", dropin) }}
