{#- nginx with the stream module (the 443 ALPN multiplexer).  Installed
    without autostart: Debian's default site would take port 80 from the
    acmetool redirector, and the final config needs certificates first. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- from "chatmail/packages.jinja" import pkgs_installed_without_autostart %}
{%- call stage("install", "chatmail-nginx-package-skipped") %}
{{ pkgs_installed_without_autostart("nginx", params.packages.nginx) }}
{%- endcall %}
