{#- fcgiwrap stops (socket first, so nothing starts it again) and the
    account-suggestion CGI goes.  Disabling the socket disables the service
    too: Debian's fcgiwrap.service is enabled only through it (Also=). -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/clean.jinja" import cleaned with context %}
{{ cleaned("fcgiwrap",
    units=params.fcgiwrap.units,
    indirect=params.fcgiwrap.on_demand,
    paths=[params.fcgiwrap.cgi]) }}
