{#- The local iroh relay's config and unit (params.iroh.files), TOFS
    templates like every other file of the formula. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- from "chatmail/libtofs.jinja" import files_switch with context %}
{%- set iroh = params.iroh %}
{%- set config = (iroh.files | selectattr("id", "equalto", "config") | first).path %}
{%- call stage("configure", "chatmail-iroh-config-skipped") %}
{%-   for file in iroh.files %}

chatmail-iroh-{{ file.id }}-file-managed:
  file.managed:
    - name: {{ file.path }}
    - source: {{ files_switch("iroh", file.source, "chatmail-iroh-" ~ file.id ~ "-file-managed") }}
    - template: jinja
    - context: {{ {"iroh": {"binary": iroh.binary, "user": iroh.user}, "config": config} | json }}
    - mode: "0644"
{%-   endfor %}
{%- endcall %}
