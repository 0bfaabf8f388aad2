{#- OpenDKIM stops; its config (and the Lua policies and resolver config of
    earlier versions) and the milter socket directory go.  /etc/dkimkeys (the signing key, the
    one published in DNS, and its tables) stays. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- from "chatmail/clean.jinja" import cleaned %}
{{ cleaned("opendkim",
    units=["opendkim"],
    unit_files=["/etc/systemd/system/opendkim.service.d/10-prevent-memory-leak.conf"],
    paths=["/etc/opendkim.conf", "/etc/opendkim", "/var/spool/postfix/opendkim"]) }}
