{#- /etc/chatmail-version says which formula revision configured the
    relay: chatmail.formula_version reads salt://chatmail/VERSION (written
    by scripts/install-relay), else git of a local checkout, else FORMULA's
    version, else "unknown"; never an error line. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- set version = salt["chatmail.formula_version"]() %}
{%- if "configure" in chatmail.stages %}

chatmail-version-marker-file-managed:
  file.managed:
    - name: /etc/chatmail-version
    - contents: {{ version | yaml_encode }}
    - user: root
    - group: root
    - mode: "0644"

{%- else %}

chatmail-version-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
