{#- The iroh-relay binary, downloaded only when this relay runs its own
    (iroh_relay absent) and checked against the sha256 pinned in
    chatmail/parameters (downloads.iroh). -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- call stage("install", "chatmail-iroh-package-skipped", when=chatmail.iroh_relay_local,
               reason="stage not selected or iroh_relay set (no local relay)") %}
{%-   set iroh = params.downloads.iroh %}
{%-   set build = iroh.builds[grains["osarch"]] %}
{%-   set dir = params.iroh.dir ~ "/" ~ iroh.version %}

chatmail-iroh-user-present:
  user.present:
    - name: {{ params.iroh.user }}
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
    - name: {{ params.iroh.binary }}
    - target: {{ dir }}/iroh-relay
    - force: true
    - require:
      - archive: chatmail-iroh-release-archive-extracted
{%- endcall %}
