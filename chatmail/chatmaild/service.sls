{#- The chatmaild services as systemd units, generated from one table
    (files/units/units.yaml).  Unit files are written in the configure
    stage, services started in the activate stage; every daemon restarts
    when the chatmaild code or chatmail.ini changed, and when its unit did
    (Salt reloads systemd when a unit file changed). -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- from "chatmail/libtofs.jinja" import files_switch with context %}
{%- import_yaml "chatmail/chatmaild/files/units/units.yaml" as units %}
{%- set lib = "/usr/local/lib/chatmaild" %}
{%- set ini = lib ~ "/chatmail.ini" %}
{%- set unit_files = [] %}
{%- for name, unit in units.daemons | dictsort %}
{%-   do unit_files.append((name, name ~ ".service", "daemon.service.j2", unit)) %}
{%- endfor %}
{%- for name, unit in units.jobs | dictsort %}
{%-   do unit_files.append((name, name ~ ".service", "job.service.j2", unit)) %}
{%-   do unit_files.append((name, name ~ ".timer", "job.timer.j2", unit)) %}
{%- endfor %}

{%- if "configure" in chatmail.stages %}
{%-   for name, file, template, unit in unit_files %}

chatmail-chatmaild-{{ file | replace(".", "-") }}-file-managed:
  file.managed:
    - name: /etc/systemd/system/{{ file }}
    - source: {{ files_switch("chatmaild", "units/" ~ template, "chatmail-chatmaild-" ~ (file | replace(".", "-")) ~ "-file-managed") }}
    - template: jinja
    - context: {{ {"name": name, "unit": unit, "lib": lib, "ini": ini} | json }}
    - user: root
    - group: root
    - mode: "0644"
{%-   endfor %}
{%- else %}

chatmail-chatmaild-units-skipped:
  test.nop:
    - name: configure stage not selected
{%- endif %}

{%- if "activate" in chatmail.stages %}

include:
  - chatmail.chatmaild.package
  - chatmail.chatmaild.config
{%-   for name, unit in units.daemons | dictsort %}

chatmail-chatmaild-{{ name }}-service-running:
  service.running:
    - name: {{ name }}
    - enable: true
    - require:
      - sls: chatmail.chatmaild.config
    - watch:
      - sls: chatmail.chatmaild.package
      - sls: chatmail.chatmaild.config
{%-     if "configure" in chatmail.stages %}
      - file: chatmail-chatmaild-{{ name }}-service-file-managed
{%-     endif %}
{%-     if "configure" not in chatmail.stages %}
{#- activate without configure: restart when chatmail.ini, the code or the
    unit is newer than the running daemon (watch sees only this run) #}

chatmail-chatmaild-{{ name }}-service-restarted-if-stale:
  chatmail_service.restarted_if_stale:
    - name: {{ name }}
    - configs:
      - {{ ini }}
      - {{ lib }}/chatmaild
      - /etc/systemd/system/{{ name }}.service
    - require:
      - service: chatmail-chatmaild-{{ name }}-service-running
{%-     endif %}
{%-   endfor %}
{%-   for name, unit in units.jobs | dictsort %}

chatmail-chatmaild-{{ name }}-timer-service-running:
  service.running:
    - name: {{ name }}.timer
    - enable: true
{%-     if "configure" in chatmail.stages %}
    - watch:
      - file: chatmail-chatmaild-{{ name }}-timer-file-managed
      - file: chatmail-chatmaild-{{ name }}-service-file-managed
{%-     endif %}
{%-   endfor %}
{%- else %}

chatmail-chatmaild-services-skipped:
  test.nop:
    - name: activate stage not selected
{%- endif %}
