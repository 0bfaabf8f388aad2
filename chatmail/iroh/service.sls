{#- Runs only when iroh_relay is absent; any other value stops and
    disables a relay left from before (spec 9 #14). -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- if "activate" in chatmail.stages %}

include:
  - chatmail.iroh.package
  - chatmail.iroh.config
{%-   if chatmail.iroh_relay_local %}

chatmail-iroh-service-running:
  service.running:
    - name: iroh-relay
    - enable: true
    - watch:
      - sls: chatmail.iroh.package
      - sls: chatmail.iroh.config
{%-   else %}

chatmail-iroh-service-dead:
  service.dead:
    - name: iroh-relay
    - enable: false
{%-   endif %}

{%- else %}

chatmail-iroh-service-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
