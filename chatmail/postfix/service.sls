{#- Postfix runs after Dovecot (which creates private/auth and
    private/dovecot-lmtp) and the chatmaild services (filtermail ports).
    disable_mail stops and disables it (design.md §8.5). #}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- if "activate" in chatmail.stages %}

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
{%- for unit in params.postfix.replaces %}

chatmail-postfix-replaced-{{ unit }}-cmd-run:
  cmd.run:
    {#- the stop job first: a unit killed while it is being stopped is not restarted #}
    - name: >-
        systemctl stop --no-block {{ unit }}.service;
        systemctl kill --signal=SIGKILL {{ unit }}.service;
        timeout 30 sh -c 'while systemctl is-active --quiet {{ unit }}.service; do sleep 0.2; done'
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

{%- if chatmail.disable_mail %}

chatmail-postfix-service-dead:
  service.dead:
    - name: postfix
    - enable: false

{%- else %}

chatmail-postfix-service-running:
  service.running:
    - name: postfix
    - enable: true
    - require:
      - sls: chatmail.dovecot.service
      - sls: chatmail.opendkim.service
      - sls: chatmail.chatmaild.service
{%- for unit in params.postfix.replaces %}
      - service: chatmail-postfix-replaced-{{ unit }}-service-masked
{%- endfor %}
    - watch:
      - sls: chatmail.postfix.config

{#- activate without configure: restart when the config on disk is newer
    than the running daemon (watch sees only this run's changes) #}
{%- if "configure" not in chatmail.stages %}

chatmail-postfix-service-restarted-if-stale:
  chatmail_service.restarted_if_stale:
    - name: postfix
    - unit: {{ params.postfix.unit }}
    - configs:
      - /etc/postfix/main.cf
      - /etc/postfix/master.cf
      - /etc/postfix/login_map
      - /etc/postfix/submission_header_cleanup
      - /etc/postfix/incoming_header_cleanup
      - {{ params.postfix.dropin_dir }}
    - require:
      - service: chatmail-postfix-service-running
{%- endif %}

{%- endif %}
{%- else %}

chatmail-postfix-service-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
