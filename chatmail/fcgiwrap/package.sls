{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- if "install" in chatmail.stages %}

chatmail-fcgiwrap-packages-pkg-installed:
  pkg.installed:
    - pkgs: {{ params.packages.fcgiwrap | json }}

{%- else %}

chatmail-fcgiwrap-package-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
