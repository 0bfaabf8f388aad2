{#- The formula's pages and the invite QR codes go; /var/www/html itself
    stays (Debian's nginx owns it), and so does a copy of www_folder (the
    formula cannot tell its files from anyone else's). -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- from "chatmail/clean.jinja" import cleaned %}
{%- set www = "/var/www/html" %}
{%- set paths = {} %}
{%- for page in ["index.html", "info.html", "privacy.html", "style.css", "robots.txt"] %}
{%-   do paths.update({page: www ~ "/" ~ page}) %}
{%- endfor %}
{%- for ext in ["png", "svg"] %}
{%-   do paths.update({"qr-" ~ ext: www ~ "/qr-chatmail-invite-" ~ chatmail.mail_domain ~ "." ~ ext}) %}
{%- endfor %}
{{ cleaned("website", paths=paths) }}
