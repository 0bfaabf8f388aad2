{#- The account-suggestion CGI behind https://D/new (nginx passes POSTs
    to fcgiwrap, which runs it).  It is chatmaild's newemail module itself,
    run by Debian's python3; it finds the chatmaild package and the ini in
    /usr/local/lib/chatmaild. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- if "configure" in chatmail.stages %}

chatmail-fcgiwrap-newemail-file-managed:
  file.managed:
    - name: /usr/lib/cgi-bin/newemail.py
    - source: salt://chatmail/chatmaild/files/chatmaild/newemail.py
    - user: root
    - group: root
    - mode: "0755"
    - makedirs: true

{%- else %}

chatmail-fcgiwrap-config-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
