{#- nginx starts only after the certificate exists (tls) and restarts
    whenever its config changed; CGI behind /new needs fcgiwrap. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- if "activate" in chatmail.stages %}

include:
  - chatmail.nginx.config
  - chatmail.tls.service

chatmail-nginx-service-running:
  service.running:
    - name: nginx
    - enable: true
    - require:
      - sls: chatmail.tls.service
    - watch:
      - sls: chatmail.nginx.config

{%- else %}

chatmail-nginx-service-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
