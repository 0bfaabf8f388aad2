{#- Debian's fcgiwrap is socket-activated (/run/fcgiwrap.socket); the
    service is also started outright, as it did not always come up alone. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- from "chatmail/service.jinja" import service with context %}
{%- call stage("activate", "chatmail-fcgiwrap-service-skipped") %}

include:
  - chatmail.fcgiwrap.package
{%-   for unit in params.fcgiwrap.units %}
{{ service("chatmail-fcgiwrap-" ~ (unit | replace(".", "-")) ~ "-service", unit, require=["sls: chatmail.fcgiwrap.package"]) }}
{%-   endfor %}
{%- endcall %}
