{#- OpenDKIM must be up (its milter socket) before Postfix starts; it
    follows the chatmaild services like the rest of the mail path. #}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- if "activate" in chatmail.stages %}

include:
  - chatmail.opendkim.config
  - chatmail.chatmaild.service

chatmail-opendkim-service-running:
  service.running:
    - name: opendkim
    - enable: true
    - require:
      - sls: chatmail.chatmaild.service
    - watch:
      - sls: chatmail.opendkim.config

{%- else %}

chatmail-opendkim-service-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
