{#- Logs in RAM only, kept 3 days (design.md §7.3): a relay keeps as little
    about its users as it can.  A drop-in, so Debian's journald.conf stays
    untouched. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- set journald = params.journald %}
{%- call stage("configure", "chatmail-journald-config-skipped") %}

chatmail-journald-retention-file-managed:
  file.managed:
    - name: {{ journald.dropin }}
    - contents: |
        # managed by the chatmail formula
        [Journal]
        Storage=volatile
        MaxRetentionSec=3d
    - user: root
    - group: root
    - mode: "0644"
    - makedirs: true

chatmail-journald-persistent-logs-file-absent:
  file.absent:
    - name: {{ journald.persistent }}

{%-   if "activate" in chatmail.stages %}

{#- a journald restart inside a container now and then fails once
    ("control process exited"); the next attempt works #}
chatmail-journald-service-running:
  service.running:
    - name: {{ journald.unit }}
    - retry:
        attempts: 3
        interval: 2
    - watch:
      - file: chatmail-journald-retention-file-managed
{%-   endif %}

{%- endcall %}
