{#- Activate self-healing.  masterless: run chatmail-selfheal.service
    (restarted when its files change).  master: load the beacon into the
    running salt-minion now (beacon.present talks to that daemon; the
    drop-in from config.sls makes it survive a minion restart).  Any other
    mode, or nothing to watch (disable_mail): stop and remove the daemon. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- from "chatmail/selfheal/map.jinja" import selfheal with context %}
{%- if "activate" in chatmail.stages %}

include:
  - chatmail.selfheal.config
{%-   if selfheal.mode == "masterless" and selfheal.units %}

chatmail-selfheal-service-running:
  service.running:
    - name: chatmail-selfheal
    - enable: true
    - watch:
      - sls: chatmail.selfheal.config
{%-   else %}

chatmail-selfheal-service-dead:
  service.dead:
    - name: chatmail-selfheal
    - enable: false
    # never installed: nothing to stop (and a dry run has nothing to report)
    - onlyif: test -e {{ selfheal.unit_file }}
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

{%- else %}

chatmail-selfheal-service-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
