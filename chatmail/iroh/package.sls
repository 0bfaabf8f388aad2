{#- The iroh-relay binary, downloaded only when this relay runs its own
    (iroh_relay absent) and checked against the sha256 pinned in
    chatmail/parameters (downloads.iroh). -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- if "install" in chatmail.stages and chatmail.iroh_relay_local %}
{%-   set iroh = params.downloads.iroh %}
{%-   set build = iroh.builds[grains["osarch"]] %}
{%-   set dir = "/usr/local/lib/iroh-relay/" ~ iroh.version %}

chatmail-iroh-user-present:
  user.present:
    - name: iroh
    - system: true
    - usergroup: true
    - home: /nonexistent
    - createhome: false
    - shell: /usr/sbin/nologin

chatmail-iroh-release-archive-extracted:
  archive.extracted:
    - name: {{ dir }}
    - source: {{ iroh.url | replace("{version}", iroh.version) | replace("{arch}", build.arch) }}
    - source_hash: sha256={{ build.sha256 }}
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
