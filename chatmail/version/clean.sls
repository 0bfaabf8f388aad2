{#- The marker of the formula revision goes with the relay it describes. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/clean.jinja" import cleaned with context %}
{{ cleaned("version", paths=[params.version.marker]) }}
