{#- mtail stops (whatever mtail_address is now); its unit, which shadows
    Debian's, and the program go. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- from "chatmail/clean.jinja" import cleaned %}
{{ cleaned("mtail",
    units=["mtail"],
    unit_files=["/etc/systemd/system/mtail.service"],
    paths=["/etc/mtail/delivered_mail.mtail"]) }}
