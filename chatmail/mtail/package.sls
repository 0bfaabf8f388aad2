{#- Debian's mtail (upstream downloads a static v3.0.8; Debian's 3.0.0~rc50
    runs the same program, see docs/components/units.md). Only with
    mtail_address. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- from "chatmail/packages.jinja" import pkgs_installed_without_autostart %}
{%- call stage("install", "chatmail-mtail-package-skipped", when=chatmail.mtail_address,
               reason="stage not selected or no mtail_address") %}
{{ pkgs_installed_without_autostart("mtail", params.packages.mtail) }}
{%- endcall %}
