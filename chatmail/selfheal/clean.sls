{#- Self-healing goes first: it would restart the daemons the other cleans
    stop.  The masterless daemon stops; its unit, config, launcher, keys and
    cache go, and so does the master-mode drop-in.  In mode master the
    beacon is also unloaded from the running salt-minion. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- from "chatmail/selfheal/map.jinja" import selfheal with context %}
{%- from "chatmail/clean.jinja" import cleaned %}
{{ cleaned("selfheal",
    units=["chatmail-selfheal"],
    unit_files=[selfheal.unit_file],
    paths={
      "home": selfheal.home,
      "launcher": salt["file.dirname"](selfheal.launcher),
      "master-dropin": selfheal.master_dropin,
      "keys": "/var/lib/chatmail-selfheal",
      "cache": "/var/cache/chatmail-selfheal",
    }) }}
{%- if selfheal.mode == "master" %}

chatmail-selfheal-beacon-absent:
  beacon.absent:
    - name: {{ selfheal.beacon }}
{%- endif %}
