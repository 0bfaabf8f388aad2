{#- Runs only when iroh_relay is absent; any other value stops and
    disables a relay left from before (design.md §9 #14). -#}
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

{#- activate without configure: restart when the config on disk is newer
    than the running daemon (watch sees only this run's changes) #}
{%- if "configure" not in chatmail.stages %}

chatmail-iroh-service-restarted-if-stale:
  chatmail_service.restarted_if_stale:
    - name: iroh-relay
    - configs:
      - /etc/iroh-relay.toml
      - /etc/systemd/system/iroh-relay.service
    - require:
      - service: chatmail-iroh-service-running
{%- endif %}
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
