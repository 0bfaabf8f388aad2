{#- The local iroh relay stops; its unit, config and the downloaded binary
    go (whatever iroh_relay is now: a relay run earlier is cleaned too).
    The iroh system user stays. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/clean.jinja" import cleaned with context %}
{{ cleaned("iroh", units=[params.iroh.unit], files=params.iroh.files, paths=[params.iroh.binary, params.iroh.dir]) }}
