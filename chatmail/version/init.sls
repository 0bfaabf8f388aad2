{#- /etc/chatmail-version says which formula revision configured the
    relay (spec 7.7).  The text comes from salt://chatmail/VERSION, a file
    the deploy tooling writes next to the states (`git rev-parse HEAD`
    plus `git diff`); without it the marker says "unknown". -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- set version = salt["cp.get_file_str"]("salt://chatmail/VERSION") or "unknown\n" %}
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
