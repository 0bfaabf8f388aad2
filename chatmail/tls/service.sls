{#- ACME: the redirector answers HTTP-01 challenges on :80 (and sends
    everything else to https), then certificates are requested at once when
    missing, near expiry or when the wanted names changed; afterwards the
    daily timer renews and the hook reloads nginx, Dovecot and Postfix.
    Everything that uses the certificate requires this SLS, so nothing
    starts without one.  external: a path unit reloads the same daemons
    when the operator replaces the files. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- from "chatmail/service.jinja" import service with context %}
{%- from "chatmail/tls/map.jinja" import tls with context %}
{#- the unit files are written by the configure stage: watched only when it runs -#}
{%- set configured = "configure" in chatmail.stages %}
{%- call stage("activate", "chatmail-tls-service-skipped") %}

include:
  - chatmail.tls.config

{%-   if chatmail.tls_mode == "acme" %}
{%-     set env = ("SSL_CERT_FILE=" ~ tls.acme_ca_file ~ " ") if tls.acme_ca_file else "" %}
{{ service("chatmail-tls-redirector-service", "acmetool-redirector",
    watch=["file: chatmail-tls-redirector-unit-file-managed"] if configured else []) }}
{{ service("chatmail-tls-reconcile-timer-service", "acmetool-reconcile.timer",
    watch=["file: chatmail-tls-reconcile-timer-file-managed"] if configured else []) }}

{#- Debian's own timer would reconcile a second time, sandboxed so that
    its hook cannot reload the daemons. #}
chatmail-tls-debian-timer-service-dead:
  service.dead:
    - name: acmetool.timer
    - enable: false

chatmail-tls-reconcile-cmd-run:
  cmd.run:
    - name: {{ env }}/usr/bin/acmetool --batch --xlog.severity=debug reconcile
    - unless: >-
        test {{ chatmail.tls_cert_path }} -nt {{ tls.acme_state }}/desired/{{ chatmail.mail_domain }} &&
        openssl x509 -checkend 2592000 -noout -in {{ chatmail.tls_cert_path }}
    - require:
      - service: chatmail-tls-redirector-service-running
      - sls: chatmail.tls.config

{%-   elif chatmail.tls_mode == "external" %}
{{ service("chatmail-tls-watch-path-service", "chatmail-tls-reload.path", require=["sls: chatmail.tls.config"],
    watch=["file: chatmail-tls-watch-path-file-managed", "file: chatmail-tls-watch-service-file-managed"] if configured else []) }}

{%-   else %}

chatmail-tls-service-nothing-to-run:
  test.nop:
    - name: a self-signed certificate needs no service
    - require:
      - sls: chatmail.tls.config
{%-   endif %}

{%- endcall %}
