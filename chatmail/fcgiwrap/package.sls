{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- call stage("install", "chatmail-fcgiwrap-package-skipped") %}

chatmail-fcgiwrap-packages-pkg-installed:
  pkg.installed:
    - pkgs: {{ params.packages.fcgiwrap | json }}
{%- endcall %}
