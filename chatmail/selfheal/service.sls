{#- Activate self-healing.  masterless: run chatmail-selfheal.service
    (restarted when its files change).  master: load the beacon into the
    running salt-minion now (beacon.present talks to that daemon; the
    drop-in from config.sls makes it survive a minion restart).  Any other
    mode, or nothing to watch (disable_mail): stop and remove the daemon. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/selfheal/map.jinja" import selfheal with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- from "chatmail/service.jinja" import service with context %}
{%- call stage("activate", "chatmail-selfheal-service-skipped") %}

include:
  - chatmail.selfheal.config
{%-   set running = selfheal.mode == "masterless" and selfheal.units %}
{#- the daemon reads its masterless files (minion config, beacons, reactor,
    launcher, unit): restarted when one is newer than it -#}
{%-   set stale = [] %}
{%-   for thing, (path, mode, template, perm) in selfheal.files | dictsort if mode == "masterless" %}
{%-     do stale.append(path) %}
{%-   endfor %}
{{ service("chatmail-selfheal-service", params.selfheal.unit, running=running,
    watch=["sls: chatmail.selfheal.config"], stale=stale, dead_onlyif="test -e " ~ selfheal.unit_file) }}
{%-   if not running %}
{%-     for thing, (path, mode, template, perm) in selfheal.files | dictsort if mode == "masterless" %}

chatmail-selfheal-{{ thing }}-file-absent:
  file.absent:
    - name: {{ path }}
    - require:
      - service: chatmail-selfheal-service-dead
{%-     endfor %}
{%-   endif %}
{%-   if selfheal.mode == "master" %}

chatmail-selfheal-beacon-{{ "present" if selfheal.units else "absent" }}:
  beacon.{{ "present" if selfheal.units else "absent" }}:
    - name: {{ selfheal.beacon }}
{%-     if selfheal.units %}
{%-       for item in selfheal.config %}
{%-         for key, value in item.items() %}
    - {{ key }}: {{ value | json }}
{%-         endfor %}
{%-       endfor %}
{%-     endif %}
    - require:
      - sls: chatmail.selfheal.config
{%-   endif %}

{%- endcall %}
