{#- Postfix from Debian.  The postfix user joins group opendkim so the
    reinject smtpd services can reach the milter socket in
    /var/spool/postfix/opendkim (opendkim:opendkim 0750, UMask 007). #}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- call stage("install", "chatmail-postfix-package-skipped") %}

include:
  - chatmail.opendkim.package

chatmail-postfix-packages-pkg-installed:
  pkg.installed:
    - pkgs: {{ params.packages.postfix | json }}

chatmail-postfix-opendkim-group-present:
  group.present:
    - name: {{ params.opendkim.user }}
    - system: true
    - addusers:
      - postfix
    - require:
      - pkg: chatmail-postfix-packages-pkg-installed
      - sls: chatmail.opendkim.package

{%- endcall %}
