{#- Logs in RAM only, kept 3 days (design.md §7.3): a relay keeps as little
    about its users as it can.  A drop-in, so Debian's journald.conf stays
    untouched. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- if "configure" in chatmail.stages %}

chatmail-journald-retention-file-managed:
  file.managed:
    - name: /etc/systemd/journald.conf.d/chatmail.conf
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
    - name: /var/log/journal

{%-   if "activate" in chatmail.stages %}

{#- a journald restart inside a container now and then fails once
    ("control process exited"); the next attempt works #}
chatmail-journald-service-running:
  service.running:
    - name: systemd-journald
    - retry:
        attempts: 3
        interval: 2
    - watch:
      - file: chatmail-journald-retention-file-managed
{%-   endif %}

{%- else %}

chatmail-journald-config-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
