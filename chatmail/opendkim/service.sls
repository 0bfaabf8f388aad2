{#- OpenDKIM must be up (its milter socket) before Postfix starts. #}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- if "activate" in chatmail.stages %}

include:
  - chatmail.opendkim.config

chatmail-opendkim-service-running:
  service.running:
    - name: opendkim
    - enable: true
    - watch:
      - sls: chatmail.opendkim.config

{%- else %}

chatmail-opendkim-service-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
