{#- Dovecot packages.

    dovecot_source "debian" (default): Debian 12's dovecot 2.3.19.1.
    dovecot_source "chatmail": chatmail's build of 2.3.21+dfsg1-3 with the
    hard-coded 0.5 s delay before announcing new mail removed (dovecot/core
    PR 216, not merged upstream); push notifications then arrive ~0.5 s
    sooner.  The .deb files are downloaded once, verified by sha256, and
    installed with apt (which pulls their Debian dependencies).  An apt pin
    keeps apt from ever replacing them with Debian's dovecot.  Architectures
    without a chatmail build fall back to Debian's packages. #}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- if "install" in chatmail.stages %}
{%- set base_url = "https://download.delta.chat/dovecot/" %}
{%- set version = "2.3.21%2Bdfsg1-3" %}
{%- set builds = {
    "amd64": {
        "core": "dd060706f52a306fa863d874717210b9fe10536c824afe1790eec247ded5b27d",
        "imapd": "8d8dc6fc00bbb6cdb25d345844f41ce2f1c53f764b79a838eb2a03103eebfa86",
        "lmtpd": "2f69ba5e35363de50962d42cccbfe4ed8495265044e244007d7ccddad77513ab",
    },
    "arm64": {
        "core": "e7548e8a82929722e973629ecc40fcfa886894cef3db88f23535149e7f730dc9",
        "imapd": "178fa877ddd5df9930e8308b518f4b07df10e759050725f8217a0c1fb3fd707f",
        "lmtpd": "89f52fb36524f5877a177dff4a713ba771fd3f91f22ed0af7238d495e143b38f",
    },
} %}
{%- set arch = grains.get("osarch", "") %}
{%- set build = builds.get(arch) if chatmail.dovecot_source == "chatmail" else none %}
{%- set cache = "/var/cache/chatmail/dovecot" %}
{%- if build %}

chatmail-dovecot-apt-pin-file-managed:
  file.managed:
    - name: /etc/apt/preferences.d/chatmail-dovecot
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
    - name: {{ cache }}/dovecot-{{ pkg }}_{{ version | replace("%2B", "+") }}_{{ arch }}.deb
    - source: {{ base_url }}dovecot-{{ pkg }}_{{ version }}_{{ arch }}.deb
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
      - dovecot-{{ pkg }}: {{ cache }}/dovecot-{{ pkg }}_{{ version | replace("%2B", "+") }}_{{ arch }}.deb
{%- endfor %}
    - require:
      - file: chatmail-dovecot-apt-pin-file-managed
{%- for pkg in build | sort %}
      - file: chatmail-dovecot-{{ pkg }}-deb-file-managed
{%- endfor %}

{%- else %}

chatmail-dovecot-apt-pin-file-absent:
  file.absent:
    - name: /etc/apt/preferences.d/chatmail-dovecot

chatmail-dovecot-packages-pkg-installed:
  pkg.installed:
    - pkgs:
      - dovecot-core
      - dovecot-imapd
      - dovecot-lmtpd
    - require:
      - file: chatmail-dovecot-apt-pin-file-absent
{%- endif %}

{%- else %}

chatmail-dovecot-package-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
