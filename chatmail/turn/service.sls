{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- if "activate" in chatmail.stages %}

include:
  - chatmail.turn.config

chatmail-turn-service-running:
  service.running:
    - name: coturn
    - enable: true
    - watch:
      - sls: chatmail.turn.config

{#- activate without configure: restart when the config on disk is newer
    than the running daemon (watch sees only this run's changes) #}
{%- if "configure" not in chatmail.stages %}

chatmail-turn-service-restarted-if-stale:
  chatmail_service.restarted_if_stale:
    - name: coturn
    - configs:
      - /etc/turnserver.conf
      - /usr/local/sbin/chatmail-turn-config
      - /etc/chatmail-turn
      - /etc/systemd/system/coturn.service.d
    - require:
      - service: chatmail-turn-service-running
{%- endif %}

{%- else %}

chatmail-turn-service-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
