{#- /etc/chatmail-version says which formula revision configured the
    relay: chatmail.formula_version reads salt://chatmail/VERSION (written
    by scripts/install-relay), else git of a local checkout, else FORMULA's
    version, else "unknown"; never an error line. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- set version = salt["chatmail.formula_version"]() %}
{%- call stage("configure", "chatmail-version-skipped") %}

chatmail-version-marker-file-managed:
  file.managed:
    - name: {{ params.version.marker }}
    - contents: {{ version | yaml_encode }}
    - user: root
    - group: root
    - mode: "0644"

{%- endcall %}
