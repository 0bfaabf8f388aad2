{#- Debian's fcgiwrap is socket-activated (/run/fcgiwrap.socket); the
    service is also started outright, as it did not always come up alone. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- if "activate" in chatmail.stages %}

include:
  - chatmail.fcgiwrap.package

{%-   for unit in ["fcgiwrap.socket", "fcgiwrap.service"] %}

chatmail-fcgiwrap-{{ unit | replace(".", "-") }}-service-running:
  service.running:
    - name: {{ unit }}
    - enable: true
    - require:
      - sls: chatmail.fcgiwrap.package
{%-   endfor %}

{%- else %}

chatmail-fcgiwrap-service-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
