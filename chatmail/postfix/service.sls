{#- Postfix runs after Dovecot (which creates private/auth and
    private/dovecot-lmtp) and the chatmaild services (filtermail ports).
    disable_mail stops and disables it (design.md §8.5). -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- from "chatmail/service.jinja" import service with context %}
{%- set postfix = params.postfix %}
{%- call stage("activate", "chatmail-postfix-service-skipped") %}

include:
  - chatmail.postfix.config
  - chatmail.dovecot.service
  - chatmail.opendkim.service
  - chatmail.chatmaild.service
{#- A unit of an earlier release's master (postfix@- after a dist-upgrade
    from Debian 12): its stop command no longer works on this release and
    systemd waits 90 s for it, so its processes are killed while it stops (mail a
    killed smtpd had not acknowledged is retried by its sender; acknowledged
    mail is in the queue files). #}
{%- for unit in postfix.replaces %}

chatmail-postfix-replaced-{{ unit }}-cmd-run:
  cmd.run:
    {#- the stop job first: a unit killed while it is being stopped is not
        restarted; then its failed state is reset, so systemd unloads it (a
        failed unit stays loaded, with its PartOf, see below) #}
    - name: >-
        systemctl stop --no-block {{ unit }}.service;
        systemctl kill --signal=SIGKILL {{ unit }}.service;
        timeout 30 sh -c 'while systemctl is-active --quiet {{ unit }}.service; do sleep 0.2; done';
        systemctl reset-failed {{ unit }}.service 2>/dev/null || true
    - onlyif: systemctl is-active --quiet {{ unit }}.service

{#- masked, not only disabled: Debian 13's postfix.service conflicts with
    postfix@-, which is PartOf it, so while postfix@- is loaded (until the
    reboot after the upgrade) every restart of postfix.service fails with
    "conflicting jobs"; a masked unit has no PartOf #}
chatmail-postfix-replaced-{{ unit }}-service-masked:
  service.masked:
    - name: {{ unit }}
    - require:
      - cmd: chatmail-postfix-replaced-{{ unit }}-cmd-run
{%- endfor %}

{%- set replaced = [] %}
{%- for unit in postfix.replaces %}
{%-   do replaced.append("service: chatmail-postfix-replaced-" ~ unit ~ "-service-masked") %}
{%- endfor %}
{%- set stale = [] %}
{%- for name in postfix.configs + postfix.tables %}
{%-   do stale.append(postfix.conf_dir ~ "/" ~ name) %}
{%- endfor %}
{#- "postfix" (Debian's wrapper) is what the relay enables; the daemon
    that reads the files runs in postfix.unit -#}
{{ service("chatmail-postfix-service", "postfix", running=not chatmail.disable_mail,
    require=["sls: chatmail.dovecot.service", "sls: chatmail.opendkim.service", "sls: chatmail.chatmaild.service"] + replaced,
    watch=["sls: chatmail.postfix.config"], stale=stale + [postfix.dropin_dir], stale_unit=postfix.unit) }}
{%- endcall %}
