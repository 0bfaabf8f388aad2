{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- if "install" in chatmail.stages %}

chatmail-fcgiwrap-packages-pkg-installed:
  pkg.installed:
    - name: fcgiwrap

{%- else %}

chatmail-fcgiwrap-package-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
