{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- if "install" in chatmail.stages %}

chatmail-website-packages-pkg-installed:
  pkg.installed:
    - pkgs: {{ params.packages.website | json }}

{%- else %}

chatmail-website-package-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
