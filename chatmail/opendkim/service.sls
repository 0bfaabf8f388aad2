{#- OpenDKIM must be up (its milter socket) before Postfix starts; it
    follows the chatmaild services like the rest of the mail path. #}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- from "chatmail/service.jinja" import service with context %}
{%- set opendkim = params.opendkim %}
{%- call stage("activate", "chatmail-opendkim-service-skipped") %}

include:
  - chatmail.opendkim.config
  - chatmail.chatmaild.service
{{ service("chatmail-opendkim-service", opendkim.unit,
    require=["sls: chatmail.chatmaild.service"], watch=["sls: chatmail.opendkim.config"],
    stale=[opendkim.conf, opendkim.conf_dir, opendkim.keydir, salt["file.dirname"](opendkim.dropin)]) }}
{%- endcall %}
