{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- set vmail = params.base.vmail %}
{%- call stage("install", "chatmail-base-package-skipped") %}

chatmail-base-packages-pkg-installed:
  pkg.installed:
    - pkgs: {{ params.packages.base | json }}

chatmail-base-vmail-group-present:
  group.present:
    - name: {{ vmail.user }}
    - system: true

chatmail-base-vmail-user-present:
  user.present:
    - name: {{ vmail.user }}
    - gid: {{ vmail.user }}
    - home: {{ vmail.home }}
    - createhome: true
    - shell: {{ vmail.shell }}
    - system: true
    - require:
      - group: chatmail-base-vmail-group-present
{%- endcall %}
