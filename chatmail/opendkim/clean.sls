{#- OpenDKIM stops; its config (and the Lua policies and resolver config of
    earlier versions) and the milter socket directory go.  The key
    directory (the signing key, the one published in DNS, and its tables)
    stays. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/clean.jinja" import cleaned with context %}
{%- set opendkim = params.opendkim %}
{{ cleaned("opendkim",
    units=[opendkim.unit],
    unit_files=[opendkim.dropin],
    paths=[opendkim.conf, opendkim.conf_dir, opendkim.socket_dir]) }}
