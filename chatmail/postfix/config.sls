{#- Postfix configuration.  main.cf and master.cf are validated before they
    replace the live files (see files/chatmail-postfix-check); the two
    regexp tables are static and checked by the functional tests. #}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/libtofs.jinja" import files_switch with context %}
{%- if "configure" in chatmail.stages %}

include:
  - chatmail.postfix.package

{#- chatmail-flush-queue: run by Dovecot's and doveauth's units when they
    come back, so mail deferred meanwhile goes out at once. #}
{%- for script in ("chatmail-postfix-check", "chatmail-flush-queue") %}

{{ script }}-file-managed:
  file.managed:
    - name: /usr/local/sbin/{{ script }}
    - source: {{ files_switch("postfix", script, script ~ "-file-managed") }}
    - user: root
    - group: root
    - mode: "0755"
{%- endfor %}

{%- for name in ("main.cf", "master.cf") %}

chatmail-postfix-{{ name | replace(".", "-") }}-file-managed:
  file.managed:
    - name: /etc/postfix/{{ name }}
    - source: {{ files_switch("postfix", name ~ ".j2", "chatmail-postfix-" ~ (name | replace(".", "-")) ~ "-file-managed") }}
    - template: jinja
    - context:
        chatmail: {{ chatmail | json }}
    - user: root
    - group: root
    - mode: "0644"
    - check_cmd: /usr/local/sbin/chatmail-postfix-check {{ name }}
    - require:
      - file: chatmail-postfix-check-file-managed
      - sls: chatmail.postfix.package
{%- if name == "master.cf" %}
      - file: chatmail-postfix-main-cf-file-managed
{%- endif %}
{%- endfor %}

{%- for name in ("login_map", "submission_header_cleanup", "incoming_header_cleanup") %}

chatmail-postfix-{{ name | replace("_", "-") }}-file-managed:
  file.managed:
    - name: /etc/postfix/{{ name }}
    - source: {{ files_switch("postfix", name, "chatmail-postfix-" ~ (name | replace("_", "-")) ~ "-file-managed") }}
    - user: root
    - group: root
    - mode: "0644"
    - require:
      - sls: chatmail.postfix.package
{%- endfor %}

chatmail-postfix-restart-dropin-file-managed:
  file.managed:
    - name: {{ params.postfix.dropin_dir }}/10_restart.conf
    - source: {{ files_switch("postfix", params.postfix.dropin, "chatmail-postfix-restart-dropin-file-managed") }}
    - user: root
    - group: root
    - mode: "0644"
    - makedirs: true

chatmail-postfix-systemd-reload-module-run:
  module.run:
    - service.systemctl_reload: []
    - onchanges:
      - file: chatmail-postfix-restart-dropin-file-managed

{%- else %}

chatmail-postfix-config-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
