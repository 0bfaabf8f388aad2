{#- The one chatmail.ini every service reads: rendered from the validated
    pillar, so it always carries every key with its effective value. #}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- set lib = params.chatmaild.lib %}
{%- from "chatmail/libtofs.jinja" import files_switch with context %}
{%- call stage("configure", "chatmail-chatmaild-config-skipped") %}

chatmail-chatmaild-ini-file-managed:
  file.managed:
    - name: {{ lib }}/chatmail.ini
    - contents: {{ chatmail.ini | yaml_encode }}
    - user: root
    - group: root
    - mode: "0644"
    - makedirs: true

{#- The app version index chatmail-metadata serves (read on each lookup,
    so no restart): pillar appversions if given, else the formula's file. #}
chatmail-chatmaild-appversions-file-managed:
  file.managed:
    - name: {{ lib }}/appversions.json
{%- if chatmail.appversions_json is not none %}
    - contents: {{ chatmail.appversions_json | yaml_encode }}
{%- else %}
    - source: {{ files_switch("chatmaild", "appversions.json", "chatmail-chatmaild-appversions-file-managed") }}
{%- endif %}
    - user: root
    - group: root
    - mode: "0644"
    - makedirs: true
    - check_cmd: python3 -m json.tool

{%- endcall %}
