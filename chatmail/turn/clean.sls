{#- coturn stops; its config, the assembling script and the drop-in go.
    The secret (params.turn.secret_dir) stays: credentials handed out with it
    keep working after a rebuild. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/clean.jinja" import cleaned with context %}
{{ cleaned("turn", units=[params.turn.unit], files=params.turn.files) }}
