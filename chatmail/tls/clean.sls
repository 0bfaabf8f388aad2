{#- The renewal and reload units of every tls_mode stop and go, with the
    acmetool hook.  Certificates, keys and acmetool's state
    (/var/lib/acme: account, desired names, certificates) stay.
    Debian's acmetool.timer, which the formula disabled, stays disabled. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- from "chatmail/tls/map.jinja" import tls with context %}
{%- from "chatmail/clean.jinja" import cleaned %}
{%- set units = [
  "acmetool-reconcile.timer",
  "acmetool-reconcile.service",
  "acmetool-redirector.service",
  "chatmail-tls-reload.path",
  "chatmail-tls-reload.service",
] %}
{%- set unit_files = [] %}
{%- for unit in units %}
{%-   do unit_files.append("/etc/systemd/system/" ~ unit) %}
{%- endfor %}
{{ cleaned("tls", units=units, unit_files=unit_files, paths=["/etc/acme/hooks/chatmail-reload"]) }}
