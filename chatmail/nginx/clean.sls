{#- nginx stops; nginx.conf (Debian's file, replaced by the formula: it
    goes too, see docs/clean.md) and the two well-known files go. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- from "chatmail/clean.jinja" import cleaned %}
{{ cleaned("nginx",
    units=["nginx"],
    paths=["/etc/nginx/nginx.conf", "/var/www/html/.well-known/autoconfig/mail/config-v1.1.xml",
           "/var/www/html/.well-known/mta-sts.txt"]) }}
