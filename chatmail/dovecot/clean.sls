{#- Dovecot stops (after self-healing, which would restart it); its config
    (dovecot.conf is Debian's file, replaced by the formula: it goes too,
    see docs/clean.md), the drop-in, the sysctl file and the TZ line go.
    Mailboxes stay.  The inotify limits stay in force until a reboot. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- from "chatmail/clean.jinja" import cleaned, service_dead_id %}
{{ cleaned("dovecot",
    after=["chatmail.selfheal.clean"],
    units=["dovecot"],
    unit_files=["/etc/systemd/system/dovecot.service.d/10_restart.conf"],
    paths=["/etc/dovecot/dovecot.conf", "/etc/dovecot/auth.conf", "/etc/dovecot/push_notification.lua",
           "/etc/sysctl.d/90-chatmail-dovecot.conf"]) }}

chatmail-dovecot-tz-file-replace:
  file.replace:
    - name: /etc/environment
    - pattern: '^TZ=:/etc/localtime\n'
    - repl: ''
    - ignore_if_missing: true
    - require:
      - service: {{ service_dead_id("dovecot", "dovecot") }}
