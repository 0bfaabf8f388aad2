{#- Postfix from Debian.  The postfix user joins group opendkim so the
    reinject smtpd services can reach the milter socket in
    /var/spool/postfix/opendkim (opendkim:opendkim 0750, UMask 007). #}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- if "install" in chatmail.stages %}

include:
  - chatmail.opendkim.package

chatmail-postfix-packages-pkg-installed:
  pkg.installed:
    - pkgs: {{ params.packages.postfix | json }}

chatmail-postfix-opendkim-group-present:
  group.present:
    - name: opendkim
    - system: true
    - addusers:
      - postfix
    - require:
      - pkg: chatmail-postfix-packages-pkg-installed
      - sls: chatmail.opendkim.package

{%- else %}

chatmail-postfix-package-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
