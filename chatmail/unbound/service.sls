{#- unbound starts only here, after its config exists; then (and only
    then) the host resolves through it.  resolv.conf names only the local
    resolver: no public fallback, so a relay never leaks lookups elsewhere
    and a broken resolver shows up at once instead of being masked. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/unbound/ipv6.jinja" import unbound_ipv6 with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- from "chatmail/service.jinja" import service with context %}
{%- call stage("activate", "chatmail-unbound-service-skipped") %}

include:
  - chatmail.unbound.config
{{ service("chatmail-unbound-service", params.unbound.unit,
    watch=["sls: chatmail.unbound.config"], stale=[params.unbound.conf, params.unbound.dropin]) }}

{#- Debian's unbound-resolvconf.service hands unbound to resolvconf as the
    host's resolver whenever resolvconf is installed (an operator's choice
    or a dependency): resolv.conf would become resolvconf's symlink again.
    The formula's static file is the only source, so the unit is stopped
    and disabled (as upstream 1.12). #}
chatmail-unbound-resolvconf-service-dead:
  service.dead:
    - name: unbound-resolvconf
    - enable: false
    - require:
      - service: chatmail-unbound-service-running

{#- the host's own resolv.conf (a file or systemd-resolved's symlink) is
    kept once, so chatmail.unbound.clean can give the host its DNS back #}
chatmail-unbound-resolv-conf-original-cmd-run:
  cmd.run:
    - name: cp -P /etc/resolv.conf {{ params.unbound.resolv_backup }}
    - onlyif: test -e /etc/resolv.conf -o -L /etc/resolv.conf
    - unless: >-
        test -e {{ params.unbound.resolv_backup }} -o -L {{ params.unbound.resolv_backup }} ||
        grep -qs "managed by the chatmail formula" /etc/resolv.conf
    - require:
      - service: chatmail-unbound-service-running

chatmail-unbound-resolv-conf-file-managed:
  file.managed:
    - name: /etc/resolv.conf
    - follow_symlinks: false
    - contents: |
        # managed by the chatmail formula: the local unbound resolver
        nameserver 127.0.0.1
{%- if unbound_ipv6 %}
        nameserver ::1
{%- endif %}
        options trust-ad
    - user: root
    - group: root
    - mode: "0644"
    - require:
      - service: chatmail-unbound-service-running
      - cmd: chatmail-unbound-resolv-conf-original-cmd-run

{%- endcall %}
