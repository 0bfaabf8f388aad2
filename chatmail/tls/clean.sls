{#- The renewal and reload units of every tls_mode stop and go, with the
    acmetool hook.  Certificates, keys and acmetool's state
    (/var/lib/acme: account, desired names, certificates) stay.
    Debian's acmetool.timer, which the formula disabled, stays disabled. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/tls/map.jinja" import tls with context %}
{%- from "chatmail/clean.jinja" import cleaned with context %}
{%- set units = params.tls.units %}
{%- set unit_files = [] %}
{%- for unit in units %}
{%-   do unit_files.append(params.systemd_dir ~ "/" ~ unit) %}
{%- endfor %}
{{ cleaned("tls", units=units, unit_files=unit_files, paths=[params.tls.hook]) }}
