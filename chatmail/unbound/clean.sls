{#- unbound stops; its config drop-in and unit drop-in go, and the formula's /etc/resolv.conf
    (only while it is still the formula's file: it names a resolver that no
    longer runs) gives way to the host's own, kept by the first apply in
    /etc/resolv.conf.pre-chatmail.  Without that copy (a relay set up by an
    older formula) the file is removed and the host has no DNS until the
    operator writes one: see docs/clean.md. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/clean.jinja" import cleaned, service_dead_id with context %}
{{ cleaned("unbound", units=[params.unbound.unit], unit_files=[params.unbound.dropin], paths=[params.unbound.conf]) }}

chatmail-unbound-resolv-conf-restored-cmd-run:
  cmd.run:
    - name: mv -f {{ params.unbound.resolv_backup }} /etc/resolv.conf
    - onlyif:
      - test -e {{ params.unbound.resolv_backup }} -o -L {{ params.unbound.resolv_backup }}
      - grep -qs "managed by the chatmail formula" /etc/resolv.conf
    - require:
      - service: {{ service_dead_id("unbound", params.unbound.unit) }}

chatmail-unbound-resolv-conf-file-absent:
  file.absent:
    - name: /etc/resolv.conf
    - onlyif: grep -qs "managed by the chatmail formula" /etc/resolv.conf
    - require:
      - cmd: chatmail-unbound-resolv-conf-restored-cmd-run
