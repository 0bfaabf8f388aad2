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
