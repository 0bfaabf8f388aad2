{#- fcgiwrap stops (socket first, so nothing starts it again) and the
    account-suggestion CGI goes.  Disabling the socket disables the service
    too: Debian's fcgiwrap.service is enabled only through it (Also=). -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- from "chatmail/clean.jinja" import cleaned %}
{{ cleaned("fcgiwrap",
    units=["fcgiwrap.socket", "fcgiwrap.service"],
    indirect=["fcgiwrap.service"],
    paths=["/usr/lib/cgi-bin/newemail.py"]) }}
