{#- Debian's fcgiwrap is socket-activated (/run/fcgiwrap.socket): the
    socket runs, and nginx's first CGI request starts fcgiwrap.service.
    Started outright it would be down again after every reboot, and the
    next run would report starting it. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- from "chatmail/service.jinja" import service with context %}
{%- call stage("activate", "chatmail-fcgiwrap-service-skipped") %}

include:
  - chatmail.fcgiwrap.package
{%-   for unit in params.fcgiwrap.units if unit not in params.fcgiwrap.on_demand %}
{{ service("chatmail-fcgiwrap-" ~ (unit | replace(".", "-")) ~ "-service", unit, require=["sls: chatmail.fcgiwrap.package"]) }}
{%-   endfor %}
{%- endcall %}
