{#- Dovecot configuration: one dovecot.conf replaces Debian's whole conf
    tree (validated with doveconf before it goes live), the account lookup
    (2.3: dict auth config; 2.4: auth.lua, as 2.4 has no dict passdb), the
    push hook, and the host settings Dovecot wants.  params.dovecot picks
    the dialect's template and files. #}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage, daemon_reload with context %}
{%- set dovecot = params.dovecot %}
{%- from "chatmail/libtofs.jinja" import files_switch with context %}
{%- call stage("configure", "chatmail-dovecot-config-skipped") %}

include:
  - chatmail.dovecot.package

chatmail-dovecot-conf-file-managed:
  file.managed:
    - name: {{ dovecot.conf_dir }}/dovecot.conf
    - source: {{ files_switch("dovecot", params.dovecot.template, "chatmail-dovecot-conf-file-managed") }}
    - template: jinja
    - context:
        chatmail: {{ chatmail | json }}
        chatmaild_lib: {{ params.chatmaild.lib }}
        conf_dir: {{ dovecot.conf_dir }}
        lmtp_socket: {{ dovecot.lmtp_socket }}
        login_processes: {{ [grains.get("num_cpus", 1), 1] | max }}
    - user: root
    - group: root
    - mode: "0644"
    - check_cmd: doveconf -n -c
    - require:
      - sls: chatmail.dovecot.package

{%- for name in params.dovecot.files %}

chatmail-dovecot-{{ name | replace(".", "-") | replace("_", "-") }}-file-managed:
  file.managed:
    - name: {{ dovecot.conf_dir }}/{{ name }}
    - source: {{ files_switch("dovecot", name, "chatmail-dovecot-" ~ (name | replace(".", "-") | replace("_", "-")) ~ "-file-managed") }}
    - user: root
    - group: root
    - mode: "0644"
    - require:
      - sls: chatmail.dovecot.package
{%- endfor %}

{#- Upstream sets TZ for Dovecot's sake (no stat of /etc/localtime on
    every time conversion); an online acceptance test checks it. #}
chatmail-dovecot-environment-file-managed:
  file.managed:
    - name: /etc/environment
    - replace: false
    - user: root
    - group: root
    - mode: "0644"

chatmail-dovecot-tz-file-replace:
  file.replace:
    - name: /etc/environment
    - pattern: '^TZ=.*$'
    - repl: 'TZ=:/etc/localtime'
    - append_if_not_found: true
    - require:
      - file: chatmail-dovecot-environment-file-managed

{#- Many IMAP IDLE sessions need many inotify instances and watches.
    Skipped when the kernel already allows more, and when /proc/sys is
    read-only (containers), where the host decides. #}
{%- for key in ("max_user_instances", "max_user_watches") %}

chatmail-dovecot-inotify-{{ key | replace("_", "-") }}-sysctl-present:
  sysctl.present:
    - name: fs.inotify.{{ key }}
    - value: 65535
    - config: {{ dovecot.sysctl }}
    - onlyif:
      - test -w /proc/sys/fs/inotify/{{ key }}
      - test "$(cat /proc/sys/fs/inotify/{{ key }})" -lt 65535
{%- endfor %}

chatmail-dovecot-restart-dropin-file-managed:
  file.managed:
    - name: {{ dovecot.dropin }}
    - source: {{ files_switch("dovecot", "10_restart.conf", "chatmail-dovecot-restart-dropin-file-managed") }}
    - user: root
    - group: root
    - mode: "0644"
    - makedirs: true
{{ daemon_reload("dovecot", ["chatmail-dovecot-restart-dropin-file-managed"]) }}
{%- endcall %}
