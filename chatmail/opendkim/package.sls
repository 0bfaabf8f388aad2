{#- OpenDKIM from Debian; dns-root-data provides the DNSSEC trust anchor. #}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- call stage("install", "chatmail-opendkim-package-skipped") %}

chatmail-opendkim-packages-pkg-installed:
  pkg.installed:
    - pkgs: {{ params.packages.opendkim | json }}

chatmail-opendkim-group-present:
  group.present:
    - name: {{ params.opendkim.user }}
    - system: true
    - addusers:
      - {{ params.opendkim.user }}
    - require:
      - pkg: chatmail-opendkim-packages-pkg-installed

{%- endcall %}
