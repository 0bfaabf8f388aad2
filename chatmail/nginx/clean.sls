{#- nginx stops; nginx.conf (Debian's file, replaced by the formula: it
    goes too, see docs/clean.md), the drop-in and the two well-known files go. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/clean.jinja" import cleaned with context %}
{{ cleaned("nginx", units=[params.nginx.unit], files=params.nginx.files) }}
