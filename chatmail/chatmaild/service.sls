{#- The chatmaild services as systemd units, generated from one table
    (files/units/units.yaml).  Unit files are written in the configure
    stage, services started in the activate stage; every daemon restarts
    when the chatmaild code or chatmail.ini changed, and when its unit did
    (Salt reloads systemd when a unit file changed). -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- from "chatmail/service.jinja" import service with context %}
{%- from "chatmail/libtofs.jinja" import files_switch with context %}
{%- import_yaml "chatmail/chatmaild/files/units/units.yaml" as units %}
{%- set lib = params.chatmaild.lib %}
{%- set ini = lib ~ "/chatmail.ini" %}
{#- what units.yaml's {placeholders} stand for, filled in here so the
    unit templates print the table's values as they are -#}
{%- set placeholders = {"{ini}": ini, "{turn_secret}": params.turn.secret, "{lmtp_socket}": params.dovecot.lmtp_socket} %}
{%- macro fill(text) %}
{%-   set ns = namespace(text=text) %}
{%-   for key, value in placeholders | dictsort %}{% set ns.text = ns.text | replace(key, value) %}{% endfor %}
{{-   ns.text }}
{%- endmacro %}
{%- set filled = {"daemons": {}, "jobs": {}} %}
{%- for kind in ["daemons", "jobs"] %}
{%-   for name, unit in units[kind] | dictsort %}
{%-     set environment = {} %}
{%-     for key, value in (unit.environment | default({})) | dictsort %}{% do environment.update({key: fill(value) | string}) %}{% endfor %}
{%-     set one = {} %}
{%-     do one.update(unit) %}
{%-     do one.update({"args": fill(unit.args) | string, "environment": environment}) %}
{%-     do filled[kind].update({name: one}) %}
{%-   endfor %}
{%- endfor %}
{%- set unit_files = [] %}
{%- for name, unit in filled.daemons | dictsort %}
{%-   do unit_files.append((name, name ~ ".service", "daemon.service.j2", unit)) %}
{%- endfor %}
{%- for name, unit in filled.jobs | dictsort %}
{%-   do unit_files.append((name, name ~ ".service", "job.service.j2", unit)) %}
{%-   do unit_files.append((name, name ~ ".timer", "job.timer.j2", unit)) %}
{%- endfor %}
{%- set configured = "configure" in chatmail.stages %}

{%- call stage("configure", "chatmail-chatmaild-units-skipped", reason="configure stage not selected") %}
{%-   for name, file, template, unit in unit_files %}

chatmail-chatmaild-{{ file | replace(".", "-") }}-file-managed:
  file.managed:
    - name: {{ params.systemd_dir }}/{{ file }}
    - source: {{ files_switch("chatmaild", "units/" ~ template, "chatmail-chatmaild-" ~ (file | replace(".", "-")) ~ "-file-managed") }}
    - template: jinja
    - context: {{ {"name": name, "unit": unit, "lib": lib} | json }}
    - user: root
    - group: root
    - mode: "0644"
{%-   endfor %}
{%- endcall %}

{%- call stage("activate", "chatmail-chatmaild-services-skipped", reason="activate stage not selected") %}

include:
  - chatmail.chatmaild.package
  - chatmail.chatmaild.config
{%-   for name, unit in units.daemons | dictsort %}
{#- every daemon reads chatmail.ini, the code and its unit -#}
{{ service("chatmail-chatmaild-" ~ name ~ "-service", name,
    require=["sls: chatmail.chatmaild.config"],
    watch=["sls: chatmail.chatmaild.package", "sls: chatmail.chatmaild.config"]
          + (["file: chatmail-chatmaild-" ~ name ~ "-service-file-managed"] if configured else []),
    stale=[ini, lib ~ "/chatmaild", params.systemd_dir ~ "/" ~ name ~ ".service"]) }}
{%-   endfor %}
{%-   for name, unit in units.jobs | dictsort %}
{{ service("chatmail-chatmaild-" ~ name ~ "-timer-service", name ~ ".timer",
    watch=["file: chatmail-chatmaild-" ~ name ~ "-timer-file-managed",
           "file: chatmail-chatmaild-" ~ name ~ "-service-file-managed"] if configured else []) }}
{%-   endfor %}
{%- endcall %}
