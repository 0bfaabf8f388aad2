{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- if "activate" in chatmail.stages %}

include:
  - chatmail.mtail.config
{%-   if chatmail.mtail_address %}

chatmail-mtail-service-running:
  service.running:
    - name: mtail
    - enable: true
    - watch:
      - sls: chatmail.mtail.config

{#- activate without configure: restart when the config on disk is newer
    than the running daemon (watch sees only this run's changes) #}
{%- if "configure" not in chatmail.stages %}

chatmail-mtail-service-restarted-if-stale:
  chatmail_service.restarted_if_stale:
    - name: mtail
    - configs:
      - /etc/mtail/delivered_mail.mtail
      - /etc/systemd/system/mtail.service
    - require:
      - service: chatmail-mtail-service-running
{%- endif %}
{%-   else %}

chatmail-mtail-service-dead:
  service.dead:
    - name: mtail
    - enable: false
{%-   endif %}

{%- else %}

chatmail-mtail-service-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
