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

{#- activate without configure: restart when the config on disk is newer
    than the running daemon (watch sees only this run's changes) #}
{%- if "configure" not in chatmail.stages %}

chatmail-nginx-service-restarted-if-stale:
  chatmail_service.restarted_if_stale:
    - name: nginx
    - configs:
      - /etc/nginx/nginx.conf
    - require:
      - service: chatmail-nginx-service-running
{%- endif %}

{%- else %}

chatmail-nginx-service-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
