{#- nginx.conf (checked with `nginx -t` before it replaces the live one,
    which needs the certificate: hence the tls requisite), the two
    well-known files every client and MTA fetches, and the unit's drop-in
    (restart after a crash). -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage, daemon_reload with context %}
{%- from "chatmail/libtofs.jinja" import files_switch with context %}
{%- call stage("configure", "chatmail-nginx-config-skipped") %}

include:
  - chatmail.nginx.package
  - chatmail.tls.service
{%-   for file in params.nginx.files %}

chatmail-nginx-{{ file.id }}-file-managed:
  file.managed:
    - name: {{ file.path }}
    - source: {{ files_switch("nginx", file.source, "chatmail-nginx-" ~ file.id ~ "-file-managed") }}
    - template: jinja
    - context:
        chatmail: {{ chatmail | json }}
        www: {{ params.website.www }}
        cgi: {{ params.fcgiwrap.cgi }}
        chatmaild_lib: {{ params.chatmaild.lib }}
    - user: root
    - group: root
    - mode: "0644"
    - makedirs: true
{%-     if file.check is defined %}
    - check_cmd: {{ file.check }}
{%-     endif %}
    - require:
      - sls: chatmail.nginx.package
      - sls: chatmail.tls.service
{%-   endfor %}
{{ daemon_reload("nginx", ["chatmail-nginx-dropin-file-managed"]) }}

{%- endcall %}
