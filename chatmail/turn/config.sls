{#- coturn with `use-auth-secret`: whoever knows the secret can mint
    credentials (user = expiry timestamp, password = HMAC-SHA1).  The
    secret is made once on the relay and never leaves it: group vmail may
    read it (chatmail-metadata computes the credentials it hands out),
    and coturn gets it through a config assembled at its start, so it is
    neither in Salt's state output nor on a command line. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- from "chatmail/libtofs.jinja" import files_switch with context %}
{%- if "configure" in chatmail.stages %}

include:
  - chatmail.turn.package

chatmail-turn-secret-cmd-run:
  cmd.run:
    - name: >-
        umask 027 && mkdir -p /etc/chatmail-turn &&
        openssl rand -hex 32 > /etc/chatmail-turn/secret.new &&
        chown root:vmail /etc/chatmail-turn/secret.new && chmod 0640 /etc/chatmail-turn/secret.new &&
        mv /etc/chatmail-turn/secret.new /etc/chatmail-turn/secret
    - creates: /etc/chatmail-turn/secret

chatmail-turn-secret-dir-directory:
  file.directory:
    - name: /etc/chatmail-turn
    - user: root
    - group: vmail
    - mode: "0750"
    - require:
      - cmd: chatmail-turn-secret-cmd-run

{%-   for thing, path, template, mode in [
  ("conf", "/etc/turnserver.conf", "turnserver.conf.j2", "0644"),
  ("assemble", "/usr/local/sbin/chatmail-turn-config", "chatmail-turn-config.sh", "0755"),
  ("dropin", "/etc/systemd/system/coturn.service.d/chatmail.conf", "coturn-dropin.conf.j2", "0644"),
] %}

chatmail-turn-{{ thing }}-file-managed:
  file.managed:
    - name: {{ path }}
    - source: {{ files_switch("turn", template, "chatmail-turn-" ~ thing ~ "-file-managed") }}
    - template: jinja
    - context:
        chatmail: {{ chatmail | json }}
    - user: root
    - group: root
    - mode: "{{ mode }}"
    - makedirs: true
    - require:
      - sls: chatmail.turn.package
{%-   endfor %}

{%- else %}

chatmail-turn-config-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
