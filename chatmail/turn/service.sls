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

{%- else %}

chatmail-turn-service-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
