{#- Dovecot starts before Postfix: it creates Postfix's private/auth and
    private/dovecot-lmtp sockets; it needs the doveauth, metadata and
    lastlogin sockets of the chatmaild services.  disable_mail stops and disables it. #}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
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

{#- activate without configure: restart when the config on disk is newer
    than the running daemon (watch sees only this run's changes) #}
{%- if "configure" not in chatmail.stages %}

chatmail-dovecot-service-restarted-if-stale:
  chatmail_service.restarted_if_stale:
    - name: dovecot
    - configs:
      - /etc/dovecot/dovecot.conf
{%- for file in params.dovecot.files %}
      - /etc/dovecot/{{ file }}
{%- endfor %}
      - /etc/systemd/system/dovecot.service.d
    - require:
      - service: chatmail-dovecot-service-running
{%- endif %}

{%- endif %}
{%- else %}

chatmail-dovecot-service-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
