{#- mtail stops (whatever mtail_address is now); its unit, which shadows
    Debian's, and the program go. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/clean.jinja" import cleaned with context %}
{{ cleaned("mtail", units=[params.mtail.unit], files=params.mtail.files) }}
