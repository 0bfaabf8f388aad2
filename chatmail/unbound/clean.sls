{#- unbound stops; its drop-in goes, and so does the formula's
    /etc/resolv.conf (only while it is still the formula's file): it names
    a resolver that no longer runs.  The host then has no DNS until the
    operator (or a DHCP client) writes a resolv.conf: see docs/clean.md. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- from "chatmail/clean.jinja" import cleaned, service_dead_id %}
{{ cleaned("unbound", units=["unbound"], paths=["/etc/unbound/unbound.conf.d/chatmail.conf"]) }}

chatmail-unbound-resolv-conf-file-absent:
  file.absent:
    - name: /etc/resolv.conf
    - onlyif: grep -qs "managed by the chatmail formula" /etc/resolv.conf
    - require:
      - service: {{ service_dead_id("unbound", "unbound") }}
