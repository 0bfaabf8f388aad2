{#- The account-suggestion CGI behind https://D/new (nginx passes POSTs
    to fcgiwrap, which runs it).  It is chatmaild's newemail module itself,
    run by Debian's python3; it finds the chatmaild package and the ini in
    params.chatmaild.lib. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- call stage("configure", "chatmail-fcgiwrap-config-skipped") %}

chatmail-fcgiwrap-newemail-file-managed:
  file.managed:
    - name: {{ params.fcgiwrap.cgi }}
    - source: salt://chatmail/chatmaild/files/chatmaild/newemail.py
    - user: root
    - group: root
    - mode: "0755"
    - makedirs: true
{%- endcall %}
