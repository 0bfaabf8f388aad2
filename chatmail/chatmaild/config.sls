{#- The one chatmail.ini every service reads: rendered from the validated
    pillar, so it always carries every key with its effective value. #}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- if "configure" in chatmail.stages %}

chatmail-chatmaild-ini-file-managed:
  file.managed:
    - name: /usr/local/lib/chatmaild/chatmail.ini
    - contents: {{ chatmail.ini | yaml_encode }}
    - user: root
    - group: root
    - mode: "0644"
    - makedirs: true

{%- else %}

chatmail-chatmaild-config-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
