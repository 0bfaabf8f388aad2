{#- Self-healing files (docs/selfheal.md): the beacon config for the chosen
    mode; in mode masterless also the daemon's own minion config, the
    reactor file, a launcher for the Salt that applies this formula and the
    unit.  Files of a mode not chosen are removed by service.sls, after the
    daemon that uses them is stopped; the master-mode drop-in goes here
    (nothing to stop for it). -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/libtofs.jinja" import files_switch with context %}
{%- from "chatmail/selfheal/map.jinja" import selfheal with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- call stage("configure", "chatmail-selfheal-config-skipped") %}
{%-   for thing, (path, mode, template, perm) in selfheal.files | dictsort %}
{%-     if mode == selfheal.mode and selfheal.units %}

chatmail-selfheal-{{ thing }}-file-managed:
  file.managed:
    - name: {{ path }}
    - user: root
    - group: root
    - mode: "{{ perm }}"
    - makedirs: true
{%-       if template %}
    - source: {{ files_switch("selfheal", template, "chatmail-selfheal-" ~ thing ~ "-file-managed") }}
    - template: jinja
    - context:
        selfheal: {{ selfheal | json }}
{%-       else %}
    - source: salt://reactor/restart_service.sls
{%-       endif %}
{%-     elif thing == "master-beacons" %}

chatmail-selfheal-{{ thing }}-file-absent:
  file.absent:
    - name: {{ path }}
{%-     endif %}
{%-   endfor %}

chatmail-selfheal-config-done:
  test.nop:
    - name: selfheal files for mode {{ selfheal.mode }}

{%- endcall %}
