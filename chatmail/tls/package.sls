{#- Only ACME mode needs software; self-signed uses openssl (base). -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- call stage("install", "chatmail-tls-package-skipped", when=chatmail.tls_mode == "acme",
               reason="stage not selected or no package needed for tls_mode " ~ chatmail.tls_mode) %}

chatmail-tls-acmetool-pkg-installed:
  pkg.installed:
    - pkgs: {{ params.packages.tls | json }}

{%- endcall %}
