{#- Runs only when iroh_relay is absent; any other value stops and
    disables a relay left from before (design.md §9 #14). -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- from "chatmail/service.jinja" import service with context %}
{%- call stage("activate", "chatmail-iroh-service-skipped") %}

include:
  - chatmail.iroh.package
  - chatmail.iroh.config
{{ service("chatmail-iroh-service", params.iroh.unit, running=chatmail.iroh_relay_local,
    watch=["sls: chatmail.iroh.package", "sls: chatmail.iroh.config"],
    files=params.iroh.files) }}
{%- endcall %}
