{#- The formula's pages and the invite QR codes go; /var/www/html itself
    stays (Debian's nginx owns it), and so does a copy of www_folder (the
    formula cannot tell its files from anyone else's). -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/clean.jinja" import cleaned with context %}
{%- set www = params.website.www %}
{%- set paths = {} %}
{%- for page in params.website.pages %}
{%-   do paths.update({page: www ~ "/" ~ page}) %}
{%- endfor %}
{%- for ext in ["png", "svg"] %}
{%-   do paths.update({"qr-" ~ ext: www ~ "/qr-chatmail-invite-" ~ chatmail.mail_domain ~ "." ~ ext}) %}
{%- endfor %}
{{ cleaned("website", paths=paths) }}
