{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- if "install" in chatmail.stages %}

chatmail-base-packages-pkg-installed:
  pkg.installed:
    - pkgs: {{ params.packages.base | json }}

chatmail-base-vmail-group-present:
  group.present:
    - name: vmail
    - system: true

chatmail-base-vmail-user-present:
  user.present:
    - name: vmail
    - gid: vmail
    - home: /home/vmail
    - createhome: true
    - shell: /usr/sbin/nologin
    - system: true
    - require:
      - group: chatmail-base-vmail-group-present

{%- else %}

chatmail-base-package-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
