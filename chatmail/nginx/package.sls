{#- nginx with the stream module (the 443 ALPN multiplexer).  Installed
    without autostart: Debian's default site would take port 80 from the
    acmetool redirector, and the final config needs certificates first. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/unbound/noautostart.jinja" import pkgs_installed_without_autostart %}
{%- if "install" in chatmail.stages %}
{{ pkgs_installed_without_autostart("nginx", params.packages.nginx) }}
{%- else %}

chatmail-nginx-package-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
