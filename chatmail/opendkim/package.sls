{#- OpenDKIM from Debian; dns-root-data provides the DNSSEC trust anchor. #}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- if "install" in chatmail.stages %}

chatmail-opendkim-packages-pkg-installed:
  pkg.installed:
    - pkgs:
      - opendkim
      - opendkim-tools
      - dns-root-data

chatmail-opendkim-group-present:
  group.present:
    - name: opendkim
    - system: true
    - addusers:
      - opendkim
    - require:
      - pkg: chatmail-opendkim-packages-pkg-installed

{%- else %}

chatmail-opendkim-package-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
