{#- The chatmaild units (the same table as service.sls) stop, timers
    first; their unit files go, then the code and chatmail.ini
    (params.chatmaild.lib) and the jobs' state directories (fsreport's
    Prometheus textfile).  What the services keep lives in the
    mailboxes (passwords, last login, push tokens) and stays. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/clean.jinja" import cleaned with context %}
{%- import_yaml "chatmail/chatmaild/files/units/units.yaml" as units %}
{%- set names = [] %}
{%- set paths = [params.chatmaild.lib] %}
{%- for name in units.jobs | sort %}
{%-   do names.extend([name ~ ".timer", name ~ ".service"]) %}
{%-   if units.jobs[name].state is defined %}
{%-     do paths.append("/var/lib/" ~ units.jobs[name].state) %}
{%-   endif %}
{%- endfor %}
{%- for name in units.daemons | sort %}
{%-   do names.append(name ~ ".service") %}
{%- endfor %}
{%- set unit_files = [] %}
{%- for name in names %}
{%-   do unit_files.append(params.systemd_dir ~ "/" ~ name) %}
{%- endfor %}
{{ cleaned("chatmaild", units=names, unit_files=unit_files, paths=paths) }}
