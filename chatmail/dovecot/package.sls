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
    and releases without a chatmail build fall back to Debian's packages.
    dovecot_source "rebuilt": Debian's own dovecot source package rebuilt
    with that delay set to 0 (files/chatmail-dovecot-rebuild), see
    docs/components/dovecot.md.  A build the file server holds under
    salt://chatmail-dovecot/<codename>/<arch>/<version>/ (a fleet master's
    build; the newest version there wins) is copied, verified against its
    SHA256SUMS and installed; without one, the relay builds it itself,
    keyed by Debian's source version, and again when Debian ships a new
    one. #}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- call stage("install", "chatmail-dovecot-package-skipped") %}
{%- set download = params.downloads.dovecot %}
{%- set arch = grains.get("osarch", "") %}
{%- set build = download.get("builds", {}).get(arch) if chatmail.dovecot_source == "chatmail" else none %}
{%- set cache = params.dovecot.cache %}
{%- set pin_packages = params.packages.dovecot | select("match", "^dovecot-") | list %}
{%- if chatmail.dovecot_source == "rebuilt" %}
{%- set served_root = "chatmail-dovecot/" ~ grains["oscodename"] ~ "/" ~ arch %}
{%- set served = salt["cp.list_master"](prefix=served_root ~ "/") %}
{%- set newest = namespace(version=none) %}
{%- for path in served if path.endswith("/SHA256SUMS") %}
{%- set version = path.split("/")[-2] %}
{%- if newest.version is none or salt["pkg.version_cmp"](version, newest.version) > 0 %}
{%- set newest.version = version %}
{%- endif %}
{%- endfor %}

chatmail-dovecot-apt-pin-file-managed:
  file.managed:
    - name: {{ params.dovecot.apt_pin }}
    - user: root
    - group: root
    - mode: "0644"
    - contents: |
        # Managed by the chatmail Salt formula.
        # Keep the rebuilt dovecot (Debian's source, IDLE notify delay 0): never take dovecot from Debian.
        Package: {{ pin_packages | join(" ") }}
        Pin: release o=Debian
        Pin-Priority: -1
{%- if newest.version %}
{#- a build on the file server (a fleet master's): copy, verify, install #}
{%- set folder = served_root ~ "/" ~ newest.version %}
{%- set debs = {} %}
{%- for pkg in pin_packages %}
{%- for path in served if path.startswith(folder ~ "/" ~ pkg ~ "_") and path.endswith(".deb") %}
{%- do debs.update({pkg: path}) %}
{%- endfor %}
{%- endfor %}
{%- set missing = pin_packages | reject("in", debs) | list %}
{%- if missing %}

chatmail-dovecot-rebuilt-debs-test-fail_without_changes:
  test.fail_without_changes:
    - name: >-
        dovecot_source rebuilt: salt://{{ folder }}/ has no .deb for {{ missing | join(", ") }};
        expected every one of {{ pin_packages | join(", ") }} from one chatmail-dovecot-rebuild build
{%- else %}
{%- for pkg, path in debs | dictsort %}

chatmail-dovecot-rebuilt-{{ pkg }}-file-managed:
  file.managed:
    - name: {{ cache }}/rebuilt/{{ path.split("/")[-1] }}
    - source: salt://{{ path }}
    - source_hash: salt://{{ folder }}/SHA256SUMS
    - user: root
    - group: root
    - mode: "0644"
    - makedirs: true
{%- endfor %}

chatmail-dovecot-rebuilt-pkg-installed:
  pkg.installed:
    - sources:
{%- for pkg, path in debs | dictsort %}
      - {{ pkg }}: {{ cache }}/rebuilt/{{ path.split("/")[-1] }}
{%- endfor %}
    - require:
      - file: chatmail-dovecot-apt-pin-file-managed
{%- for pkg in debs | sort %}
      - file: chatmail-dovecot-rebuilt-{{ pkg }}-file-managed
{%- endfor %}
    - require_in:
      - pkg: chatmail-dovecot-packages-pkg-installed
{%- endif %}
{%- else %}
{#- no build served: the relay builds Debian's source itself #}
{%- set script = "/usr/local/sbin/chatmail-dovecot-rebuild" %}
{%- set out = cache ~ "/rebuilt" %}

chatmail-dovecot-rebuild-script-file-managed:
  file.managed:
    - name: {{ script }}
    - source: salt://chatmail/dovecot/files/chatmail-dovecot-rebuild
    - user: root
    - group: root
    - mode: "0755"

chatmail-dovecot-deb-src-file-managed:
  file.managed:
    - name: /etc/apt/sources.list.d/chatmail-dovecot-src.list
    - user: root
    - group: root
    - mode: "0644"
    - contents: |
        # Managed by the chatmail Salt formula: Debian's dovecot source for the rebuild.
        deb-src http://deb.debian.org/debian {{ grains["oscodename"] }} main
        deb-src http://deb.debian.org/debian {{ grains["oscodename"] }}-updates main
        deb-src http://deb.debian.org/debian-security {{ grains["oscodename"] }}-security main

chatmail-dovecot-deb-src-cmd-run:
  cmd.run:
    - name: apt-get update -qq
    - onchanges:
      - file: chatmail-dovecot-deb-src-file-managed

chatmail-dovecot-rebuilt-cmd-run:
  cmd.run:
    - name: {{ script }} install {{ out }} {{ pin_packages | join(" ") }}
    - unless: {{ script }} current {{ out }}
    - env:
      - DELAY: "0"
    - require:
      - file: chatmail-dovecot-apt-pin-file-managed
      - file: chatmail-dovecot-rebuild-script-file-managed
      - cmd: chatmail-dovecot-deb-src-cmd-run
    - require_in:
      - pkg: chatmail-dovecot-packages-pkg-installed
{%- endif %}

chatmail-dovecot-packages-pkg-installed:
  pkg.installed:
    - pkgs: {{ params.packages.dovecot | json }}
{%- elif build %}

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
