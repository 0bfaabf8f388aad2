{#- The marker of the formula revision goes with the relay it describes. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- from "chatmail/clean.jinja" import cleaned %}
{{ cleaned("version", paths=["/etc/chatmail-version"]) }}
