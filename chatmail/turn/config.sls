{#- coturn with `use-auth-secret`: whoever knows the secret can mint
    credentials (user = expiry timestamp, password = HMAC-SHA1).  The
    secret is made once on the relay and never leaves it: group vmail may
    read it (chatmail-metadata computes the credentials it hands out),
    and coturn gets it through a config assembled at its start, so it is
    neither in Salt's state output nor on a command line. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- set secret_dir = params.turn.secret_dir %}
{%- set secret = params.turn.secret %}
{#- each file's path by its id, for the files that name one another #}
{%- set paths = {} %}
{%- for file in params.turn.files %}{% do paths.update({file.id: file.path}) %}{% endfor %}
{%- from "chatmail/libtofs.jinja" import files_switch with context %}
{%- call stage("configure", "chatmail-turn-config-skipped") %}

include:
  - chatmail.turn.package

chatmail-turn-secret-cmd-run:
  cmd.run:
    - name: >-
        umask 027 && mkdir -p {{ secret_dir }} &&
        openssl rand -hex 32 > {{ secret }}.new &&
        chown root:vmail {{ secret }}.new && chmod 0640 {{ secret }}.new &&
        mv {{ secret }}.new {{ secret }}
    - creates: {{ secret }}

chatmail-turn-secret-dir-directory:
  file.directory:
    - name: {{ secret_dir }}
    - user: root
    - group: vmail
    - mode: "0750"
    - require:
      - cmd: chatmail-turn-secret-cmd-run

{%-   for file in params.turn.files %}

chatmail-turn-{{ file.id }}-file-managed:
  file.managed:
    - name: {{ file.path }}
    - source: {{ files_switch("turn", file.source, "chatmail-turn-" ~ file.id ~ "-file-managed") }}
    - template: jinja
    - context:
        chatmail: {{ chatmail | json }}
        secret: {{ secret }}
        paths: {{ paths | json }}
    - user: root
    - group: root
    - mode: "{{ file.mode }}"
    - makedirs: true
    - require:
      - sls: chatmail.turn.package
{%-   endfor %}

{%- endcall %}
