{#- Dovecot packages.

    dovecot_source "debian" (default): Debian's dovecot (2.3.19.1 on
    Debian 12, 2.4 on Debian 13).
    dovecot_source "chatmail": chatmail's build (Debian 12 only:
    2.3.21+dfsg1-3, downloads.dovecot in chatmail/parameters/osfinger/
    Debian-12.yaml) with the hard-coded 0.5 s delay before announcing new
    mail removed (dovecot/core PR 216, not merged upstream); push notifications then arrive ~0.5 s
    sooner.  The .deb files are downloaded once, verified by sha256, and
    installed with apt (which pulls their Debian dependencies).  An apt pin
    keeps apt from ever replacing them with Debian's dovecot.  Architectures
    and releases without a chatmail build fall back to Debian's packages. #}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- call stage("install", "chatmail-dovecot-package-skipped") %}
{%- set download = params.downloads.dovecot %}
{%- set arch = grains.get("osarch", "") %}
{%- set build = download.get("builds", {}).get(arch) if chatmail.dovecot_source == "chatmail" else none %}
{%- set cache = params.dovecot.cache %}
{%- if build %}

chatmail-dovecot-apt-pin-file-managed:
  file.managed:
    - name: {{ params.dovecot.apt_pin }}
    - user: root
    - group: root
    - mode: "0644"
    - contents: |
        # Managed by the chatmail Salt formula.
        # Keep chatmail's patched dovecot build: never take dovecot from Debian.
        Package: dovecot-core dovecot-imapd dovecot-lmtpd
        Pin: release o=Debian
        Pin-Priority: -1
{%- for pkg, sha256 in build | dictsort %}

chatmail-dovecot-{{ pkg }}-deb-file-managed:
  file.managed:
    - name: {{ cache }}/dovecot-{{ pkg }}_{{ download.version }}_{{ arch }}.deb
    - source: {{ download.url | replace("{pkg}", pkg) | replace("{version}", download.version | urlencode) | replace("{arch}", arch) }}
    - source_hash: sha256={{ sha256 }}
    - user: root
    - group: root
    - mode: "0644"
    - makedirs: true
{%- endfor %}

chatmail-dovecot-packages-pkg-installed:
  pkg.installed:
    - sources:
{%- for pkg in build | sort %}
      - dovecot-{{ pkg }}: {{ cache }}/dovecot-{{ pkg }}_{{ download.version }}_{{ arch }}.deb
{%- endfor %}
    - require:
      - file: chatmail-dovecot-apt-pin-file-managed
{%- for pkg in build | sort %}
      - file: chatmail-dovecot-{{ pkg }}-deb-file-managed
{%- endfor %}

{%- else %}

chatmail-dovecot-apt-pin-file-absent:
  file.absent:
    - name: {{ params.dovecot.apt_pin }}

chatmail-dovecot-packages-pkg-installed:
  pkg.installed:
    - pkgs: {{ params.packages.dovecot | json }}
    - require:
      - file: chatmail-dovecot-apt-pin-file-absent
{%- endif %}
{%- endcall %}
