{#- Dovecot starts before Postfix: it creates Postfix's private/auth and
    private/dovecot-lmtp sockets.  disable_mail stops and disables it. #}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- if "activate" in chatmail.stages %}

include:
  - chatmail.dovecot.config

{%- if chatmail.disable_mail %}

chatmail-dovecot-service-dead:
  service.dead:
    - name: dovecot
    - enable: false

{%- else %}

chatmail-dovecot-service-running:
  service.running:
    - name: dovecot
    - enable: true
    - watch:
      - sls: chatmail.dovecot.config

{%- endif %}
{%- else %}

chatmail-dovecot-service-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
