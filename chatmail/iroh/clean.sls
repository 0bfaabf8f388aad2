{#- The local iroh relay stops; its unit, config and the downloaded binary
    go (whatever iroh_relay is now: a relay run earlier is cleaned too).
    The iroh system user stays. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- from "chatmail/clean.jinja" import cleaned %}
{{ cleaned("iroh",
    units=["iroh-relay"],
    unit_files=["/etc/systemd/system/iroh-relay.service"],
    paths=["/etc/iroh-relay.toml", "/usr/local/bin/iroh-relay", "/usr/local/lib/iroh-relay"]) }}
