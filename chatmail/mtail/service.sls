{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- from "chatmail/service.jinja" import service with context %}
{%- call stage("activate", "chatmail-mtail-service-skipped") %}

include:
  - chatmail.mtail.config
{{ service("chatmail-mtail-service", params.mtail.unit, running=chatmail.mtail_address,
    watch=["sls: chatmail.mtail.config"], files=params.mtail.files) }}
{%- endcall %}
