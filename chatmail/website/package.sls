{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- if "install" in chatmail.stages %}

chatmail-website-packages-pkg-installed:
  pkg.installed:
    - pkgs:
      - qrencode
      - rsync

{%- else %}

chatmail-website-package-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
