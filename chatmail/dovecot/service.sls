{#- Dovecot starts before Postfix: it creates Postfix's private/auth and
    private/dovecot-lmtp sockets; it needs the doveauth, metadata and
    lastlogin sockets of the chatmaild services.  disable_mail stops and disables it. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- from "chatmail/service.jinja" import service with context %}
{%- set dovecot = params.dovecot %}
{%- call stage("activate", "chatmail-dovecot-service-skipped") %}

include:
  - chatmail.dovecot.config
  - chatmail.chatmaild.service
{%- set stale = [dovecot.conf_dir ~ "/dovecot.conf"] %}
{%- for name in dovecot.files %}
{%-   do stale.append(dovecot.conf_dir ~ "/" ~ name) %}
{%- endfor %}
{%- do stale.append(salt["file.dirname"](dovecot.dropin)) %}
{{ service("chatmail-dovecot-service", dovecot.unit, running=not chatmail.disable_mail,
    require=["sls: chatmail.chatmaild.service"], watch=["sls: chatmail.dovecot.config"], stale=stale) }}
{%- endcall %}
