{#- Dovecot starts before Postfix: it creates Postfix's private/auth and
    private/dovecot-lmtp sockets; it needs the doveauth, metadata and
    lastlogin sockets of the chatmaild services.  disable_mail stops and disables it. #}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- if "activate" in chatmail.stages %}

include:
  - chatmail.dovecot.config
  - chatmail.chatmaild.service

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
    - require:
      - sls: chatmail.chatmaild.service
    - watch:
      - sls: chatmail.dovecot.config

{%- endif %}
{%- else %}

chatmail-dovecot-service-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
