{#- Dovecot stops (after self-healing, which would restart it); its config
    (dovecot.conf is Debian's file, replaced by the formula: it goes too,
    see docs/clean.md), the drop-in, the sysctl file and the TZ line go.
    Mailboxes stay.  The inotify limits stay in force until a reboot. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/clean.jinja" import cleaned, service_dead_id with context %}
{%- set dovecot = params.dovecot %}
{%- set paths = [dovecot.conf_dir ~ "/dovecot.conf"] %}
{%- for name in dovecot.files %}
{%-   do paths.append(dovecot.conf_dir ~ "/" ~ name) %}
{%- endfor %}
{{ cleaned("dovecot",
    after=["chatmail.selfheal.clean"],
    units=[dovecot.unit],
    unit_files=[dovecot.dropin],
    paths=paths + [dovecot.sysctl]) }}

chatmail-dovecot-tz-file-replace:
  file.replace:
    - name: /etc/environment
    - pattern: '^TZ=:/etc/localtime\n'
    - repl: ''
    - ignore_if_missing: true
    - require:
      - service: {{ service_dead_id("dovecot", dovecot.unit) }}
