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

{#- activate without configure: restart when the config on disk is newer
    than the running daemon (watch sees only this run's changes) #}
{%- if "configure" not in chatmail.stages %}

chatmail-opendkim-service-restarted-if-stale:
  chatmail_service.restarted_if_stale:
    - name: opendkim
    - configs:
      - /etc/opendkim.conf
      - /etc/opendkim
      - /etc/dkimkeys
      - /etc/systemd/system/opendkim.service.d
    - require:
      - service: chatmail-opendkim-service-running
{%- endif %}

{%- else %}

chatmail-opendkim-service-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
