{#- OpenDKIM from Debian; dns-root-data provides the DNSSEC trust anchor. #}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- if "install" in chatmail.stages %}

chatmail-opendkim-packages-pkg-installed:
  pkg.installed:
    - pkgs: {{ params.packages.opendkim | json }}

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
