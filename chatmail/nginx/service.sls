{#- nginx starts only after the certificate exists (tls) and restarts
    whenever its config changed; CGI behind /new needs fcgiwrap. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- from "chatmail/service.jinja" import service with context %}
{%- call stage("activate", "chatmail-nginx-service-skipped") %}

include:
  - chatmail.nginx.config
  - chatmail.tls.service
{{ service("chatmail-nginx-service", params.nginx.unit,
    require=["sls: chatmail.tls.service"], watch=["sls: chatmail.nginx.config"], files=params.nginx.files) }}
{%- endcall %}
