{#- Only ACME mode needs software; self-signed uses openssl (base). -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- if "install" in chatmail.stages and chatmail.tls_mode == "acme" %}

chatmail-tls-acmetool-pkg-installed:
  pkg.installed:
    - pkgs: {{ params.packages.tls | json }}

{%- else %}

chatmail-tls-package-skipped:
  test.nop:
    - name: stage not selected or no package needed for tls_mode {{ chatmail.tls_mode }}
{%- endif %}
