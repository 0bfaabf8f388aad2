{#- The chatmaild services run on Debian's python3 with Debian's libraries,
    so a relay needs no PyPI access; the package itself is copied from the
    formula (salt://chatmail/chatmaild/files/chatmaild). #}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- call stage("install", "chatmail-chatmaild-package-skipped") %}

chatmail-chatmaild-deps-pkg-installed:
  pkg.installed:
    - pkgs: {{ params.packages.chatmaild | json }}

chatmail-chatmaild-code-file-recurse:
  file.recurse:
    - name: {{ params.chatmaild.lib }}/chatmaild
    - source: salt://chatmail/chatmaild/files/chatmaild
    - user: root
    - group: root
    - dir_mode: "0755"
    - file_mode: "0644"
    - clean: true
    - exclude_pat: E@(__pycache__|\.pyc$)
    - makedirs: true

{%- endcall %}
