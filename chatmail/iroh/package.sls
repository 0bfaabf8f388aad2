{#- The iroh-relay binary, downloaded only when this relay runs its own
    (iroh_relay absent) and checked against the pinned sha256. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- from "chatmail/iroh/map.jinja" import iroh_version, iroh_builds %}
{%- if "install" in chatmail.stages and chatmail.iroh_relay_local %}
{%-   set arch, sha256 = iroh_builds[grains["osarch"]] %}
{%-   set dir = "/usr/local/lib/iroh-relay/" ~ iroh_version %}

chatmail-iroh-user-present:
  user.present:
    - name: iroh
    - system: true
    - usergroup: true
    - home: /nonexistent
    - createhome: false
    - shell: /usr/sbin/nologin

{%- set release_url = "https://github.com/n0-computer/iroh/releases/download/iroh-relay-v" ~ iroh_version %}

chatmail-iroh-release-archive-extracted:
  archive.extracted:
    - name: {{ dir }}
    - source: {{ release_url }}/iroh-relay-v{{ iroh_version }}-{{ arch }}-unknown-linux-musl.tar.gz
    - source_hash: sha256={{ sha256 }}
    - enforce_toplevel: false
    - if_missing: {{ dir }}/iroh-relay

chatmail-iroh-binary-file-symlink:
  file.symlink:
    - name: /usr/local/bin/iroh-relay
    - target: {{ dir }}/iroh-relay
    - force: true
    - require:
      - archive: chatmail-iroh-release-archive-extracted

{%- else %}

chatmail-iroh-package-skipped:
  test.nop:
    - name: stage not selected or iroh_relay set (no local relay)
{%- endif %}
