{#- Leftovers of older upstream deployments (design.md §7.9), removed on every
    run; each state is a no-op once the host is clean.  (acmetool's old
    cron job and hooks are removed by chatmail.tls.) -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{#- filtermail-incoming.service: the incoming filter's own unit, before
    filtermail.service ran both filters; doveauth, lastlogin and
    chatmail-metadata: a unit each, before chatmail-dicts.service ran them -#}
{%- set old_units = ["filtermail-incoming", "doveauth", "lastlogin", "chatmail-metadata"] %}
{%- set old_services = ["doveauth-dictproxy.service", "echobot.service", "mta-sts-daemon.service"] %}
{%- set old_paths = [
  "/etc/cron.d/expunge",
  "/etc/apt/keyrings/obs-home-deltachat.gpg",
  "/etc/mta-sts-daemon.yml",
  "/usr/local/lib/postfix-mta-sts-resolver",
  params.systemd_dir ~ "/mta-sts-daemon.service",
] %}
{%- for unit in old_units %}
{%-   do old_services.append(unit ~ ".service") %}
{%-   do old_paths.append(params.systemd_dir ~ "/" ~ unit ~ ".service") %}
{%- endfor %}
{%- call stage("configure", "chatmail-legacy-skipped") %}
{%-   for unit in old_services %}

chatmail-legacy-{{ unit | replace(".", "-") }}-service-dead:
  service.dead:
    - name: {{ unit }}
    - enable: false
    # only where the unit exists: service.dead of an unknown unit "would
    # change" under test=True, so a dry run of a converged relay was not quiet
    - onlyif: systemctl cat -- {{ unit }}
{%-   endfor %}
{%-   for path in old_paths %}

chatmail-legacy-{{ path | replace("/", "-") | trim("-") | replace(".", "-") }}-file-absent:
  file.absent:
    - name: {{ path }}
    - require:
      - service: chatmail-legacy-mta-sts-daemon-service-service-dead
{%-   endfor %}

chatmail-legacy-obs-apt-source-file-replace:
  file.replace:
    - name: /etc/apt/sources.list
    - pattern: '^deb .*home:/deltachat.*\n'
    - repl: ''
    - ignore_if_missing: true

chatmail-legacy-rspamd-pkg-removed:
  pkg.removed:
    - name: rspamd

{%- endcall %}
