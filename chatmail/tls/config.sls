{#- One certificate for D, mta-sts.D and www.D at chatmail.tls_cert_path /
    tls_key_path, by tls_mode:
    acme         acmetool (its state dir, responses, target, desired names, units, hook)
    self_signed  an openssl certificate made once; kept on later runs
    external     the operator's files; this only checks they exist -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- from "chatmail/libtofs.jinja" import files_switch with context %}
{%- from "chatmail/tls/map.jinja" import tls with context %}
{%- set ctx = {"chatmail": chatmail, "tls": tls} %}
{%- call stage("configure", "chatmail-tls-config-skipped") %}

include:
  - chatmail.tls.package

{%-   if chatmail.tls_mode == "acme" %}
{%-     set files = [
  ("hook", params.tls.hook, "acme-hook.sh.j2", "0755"),
  ("responses", tls.acme_state ~ "/conf/responses", "responses.yaml.j2", "0644"),
  ("target", tls.acme_state ~ "/conf/target", "target.yaml.j2", "0644"),
  ("desired", tls.acme_state ~ "/desired/" ~ chatmail.mail_domain, "desired.yaml.j2", "0644"),
  ("redirector-unit", params.systemd_dir ~ "/acmetool-redirector.service", "acmetool-redirector.service.j2", "0644"),
  ("reconcile-unit", params.systemd_dir ~ "/acmetool-reconcile.service", "acmetool-reconcile.service.j2", "0644"),
  ("reconcile-timer", params.systemd_dir ~ "/acmetool-reconcile.timer", "acmetool-reconcile.timer.j2", "0644"),
] %}
{%-     for thing, path, template, mode in files %}

chatmail-tls-{{ thing }}-file-managed:
  file.managed:
    - name: {{ path }}
    - source: {{ files_switch("tls", template, "chatmail-tls-" ~ thing ~ "-file-managed") }}
    - template: jinja
    - context: {{ ctx | json }}
    - user: root
    - group: root
    - mode: "{{ mode }}"
    - makedirs: true
    - require:
      - sls: chatmail.tls.package
{%-     endfor %}

{#- Desired files from older layouts (D-<something>) would ask for a second
    certificate; upstream's own hook and cron job would duplicate ours. #}
chatmail-tls-old-desired-cmd-run:
  cmd.run:
    - name: rm -f {{ tls.acme_state }}/desired/{{ chatmail.mail_domain }}-*
    - onlyif: ls {{ tls.acme_state }}/desired/{{ chatmail.mail_domain }}-* >/dev/null 2>&1

{%-     for path in ["/etc/cron.d/acmetool", "/usr/lib/acme/hooks/nginx", "/etc/acme/hooks/nginx"] %}

chatmail-tls-legacy-{{ path | replace("/", "-") | trim("-") }}-file-absent:
  file.absent:
    - name: {{ path }}
{%-     endfor %}

{%-   elif chatmail.tls_mode == "self_signed" %}

chatmail-tls-self-signed-cmd-run:
  cmd.run:
    - name: >-
        umask 077 &&
        mkdir -p {{ salt["file.dirname"](chatmail.tls_key_path) }} {{ salt["file.dirname"](chatmail.tls_cert_path) }} &&
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 36500
        -subj "/CN={{ chatmail.mail_domain }}"
        -addext "subjectAltName={{ tls.subject_alt_names }}"
        -addext "basicConstraints=critical,CA:FALSE"
        -addext "extendedKeyUsage=serverAuth"
        -keyout {{ chatmail.tls_key_path }} -out {{ chatmail.tls_cert_path }} 2>&1 &&
        chmod 0644 {{ chatmail.tls_cert_path }}
    - creates:
      - {{ chatmail.tls_cert_path }}
      - {{ chatmail.tls_key_path }}

{%-   else %}
{#- external: the operator delivers the files; fail early and by name. #}
{%-     for what, path in [("cert", chatmail.tls_cert_path), ("key", chatmail.tls_key_path)] %}

chatmail-tls-external-{{ what }}-file-exists:
  file.exists:
    - name: {{ path }}
{%-     endfor %}

chatmail-tls-watch-path-file-managed:
  file.managed:
    - name: {{ params.systemd_dir }}/chatmail-tls-reload.path
    - source: {{ files_switch("tls", "chatmail-tls-reload.path.j2", "chatmail-tls-watch-path-file-managed") }}
    - template: jinja
    - context: {{ ctx | json }}
    - mode: "0644"

chatmail-tls-watch-service-file-managed:
  file.managed:
    - name: {{ params.systemd_dir }}/chatmail-tls-reload.service
    - source: {{ files_switch("tls", "chatmail-tls-reload.service.j2", "chatmail-tls-watch-service-file-managed") }}
    - template: jinja
    - context: {{ ctx | json }}
    - mode: "0644"
{%-   endif %}

{%- endcall %}
