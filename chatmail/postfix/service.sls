{#- Postfix runs after Dovecot (which creates private/auth and
    private/dovecot-lmtp) and the chatmaild services (filtermail ports).
    disable_mail stops and disables it (design.md §8.5). -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage, service with context %}
{%- set postfix = params.postfix %}
{%- call stage("activate", "chatmail-postfix-service-skipped") %}

include:
  - chatmail.postfix.config
  - chatmail.dovecot.service
  - chatmail.opendkim.service
  - chatmail.chatmaild.service
{%- set stale = [] %}
{%- for name in postfix.configs + postfix.tables %}
{%-   do stale.append(postfix.conf_dir ~ "/" ~ name) %}
{%- endfor %}
{#- "postfix" (Debian's wrapper) is what the relay enables; the daemon
    that reads the files runs in postfix.unit -#}
{{ service("chatmail-postfix-service", "postfix", running=not chatmail.disable_mail,
    require=["sls: chatmail.dovecot.service", "sls: chatmail.opendkim.service", "sls: chatmail.chatmaild.service"],
    watch=["sls: chatmail.postfix.config"], stale=stale + [postfix.dropin_dir], stale_unit=postfix.unit) }}
{%- endcall %}
