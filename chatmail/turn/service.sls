{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- from "chatmail/service.jinja" import service with context %}
{%- call stage("activate", "chatmail-turn-service-skipped") %}

include:
  - chatmail.turn.config
{#- coturn reads the secret too, through the assembling script -#}
{{ service("chatmail-turn-service", params.turn.unit,
    watch=["sls: chatmail.turn.config"], files=params.turn.files, stale=[params.turn.secret_dir]) }}
{%- endcall %}
