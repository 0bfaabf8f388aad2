{#- Postfix configuration.  main.cf and master.cf are validated before they
    replace the live files (see files/chatmail-postfix-check); the two
    regexp tables are static and checked by the functional tests. #}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage, daemon_reload with context %}
{%- set postfix = params.postfix %}
{%- from "chatmail/libtofs.jinja" import files_switch with context %}
{%- call stage("configure", "chatmail-postfix-config-skipped") %}

include:
  - chatmail.postfix.package

{#- chatmail-flush-queue: run by Dovecot's and doveauth's units when they
    come back, so mail deferred meanwhile goes out at once. #}
{%- for script in postfix.scripts %}

{{ script }}-file-managed:
  file.managed:
    - name: {{ postfix.scripts_dir }}/{{ script }}
    - source: {{ files_switch("postfix", script, script ~ "-file-managed") }}
    - user: root
    - group: root
    - mode: "0755"
{%- endfor %}

{%- for name in postfix.configs %}

chatmail-postfix-{{ name | replace(".", "-") }}-file-managed:
  file.managed:
    - name: {{ postfix.conf_dir }}/{{ name }}
    - source: {{ files_switch("postfix", name ~ ".j2", "chatmail-postfix-" ~ (name | replace(".", "-")) ~ "-file-managed") }}
    - template: jinja
    - context:
        chatmail: {{ chatmail | json }}
        conf_dir: {{ postfix.conf_dir }}
    - user: root
    - group: root
    - mode: "0644"
    - check_cmd: {{ postfix.scripts_dir }}/chatmail-postfix-check {{ name }}
    - require:
      - file: chatmail-postfix-check-file-managed
      - sls: chatmail.postfix.package
{%- if name == "master.cf" %}
      - file: chatmail-postfix-main-cf-file-managed
{%- endif %}
{%- endfor %}

{%- for name in postfix.tables %}

chatmail-postfix-{{ name | replace("_", "-") }}-file-managed:
  file.managed:
    - name: {{ postfix.conf_dir }}/{{ name }}
    - source: {{ files_switch("postfix", name, "chatmail-postfix-" ~ (name | replace("_", "-")) ~ "-file-managed") }}
    - user: root
    - group: root
    - mode: "0644"
    - require:
      - sls: chatmail.postfix.package
{%- endfor %}

chatmail-postfix-restart-dropin-file-managed:
  file.managed:
    - name: {{ postfix.dropin_dir }}/{{ postfix.dropin_file }}
    - source: {{ files_switch("postfix", params.postfix.dropin, "chatmail-postfix-restart-dropin-file-managed") }}
    - user: root
    - group: root
    - mode: "0644"
    - makedirs: true
{{ daemon_reload("postfix", ["chatmail-postfix-restart-dropin-file-managed"]) }}

{%- endcall %}
