{#- Self-healing goes first: it would restart the daemons the other cleans
    stop.  The masterless daemon stops; its unit, config, launcher, keys and
    cache go, and so does the master-mode drop-in.  In mode master the
    beacon is also unloaded from the running salt-minion. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/selfheal/map.jinja" import selfheal with context %}
{%- from "chatmail/clean.jinja" import cleaned with context %}
{{ cleaned("selfheal",
    units=[params.selfheal.unit],
    unit_files=[selfheal.unit_file],
    paths={
      "home": selfheal.home,
      "launcher": salt["file.dirname"](selfheal.launcher),
      "master-dropin": selfheal.master_dropin,
      "keys": params.selfheal.keys_dir,
      "cache": params.selfheal.cache_dir,
    }) }}
{%- if selfheal.mode == "master" %}

chatmail-selfheal-beacon-absent:
  beacon.absent:
    - name: {{ selfheal.beacon }}
{%- endif %}
