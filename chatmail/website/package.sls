{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- call stage("install", "chatmail-website-package-skipped") %}

chatmail-website-packages-pkg-installed:
  pkg.installed:
    - pkgs: {{ params.packages.website | json }}

{%- endcall %}
