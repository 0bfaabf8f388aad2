{#- mtail's program (compiled by mtail before it goes live) and its unit,
    which shadows Debian's (params.mtail.files).  Only with mtail_address. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- from "chatmail/libtofs.jinja" import files_switch with context %}
{%- set mtail = params.mtail %}
{%- set program = (mtail.files | selectattr("id", "equalto", "program") | first).path %}
{%- set checks = {
  "program": "/bin/sh -c 'd=$(mktemp -d) && cp \"$0\" \"$d/p.mtail\" && /usr/bin/mtail --compile_only --progs \"$d\"; r=$?; rm -rf \"$d\"; exit $r'",
} %}
{%- call stage("configure", "chatmail-mtail-config-skipped", when=chatmail.mtail_address,
               reason="stage not selected or no mtail_address") %}
{%-   for file in mtail.files %}

chatmail-mtail-{{ file.id }}-file-managed:
  file.managed:
    - name: {{ file.path }}
    - source: {{ files_switch("mtail", file.source, "chatmail-mtail-" ~ file.id ~ "-file-managed") }}
{%-     if file.source.endswith(".j2") %}
    - template: jinja
    - context: {{ {"address": chatmail.mtail_address, "port": mtail.port, "progs": salt["file.dirname"](program)} | json }}
{%-     endif %}
    - mode: "0644"
{%-     if file.id == "program" %}
    - makedirs: true
{%-     endif %}
{%-     if file.id in checks %}
    - check_cmd: {{ checks[file.id] | yaml_squote }}
{%-     endif %}
{%-   endfor %}
{%- endcall %}
