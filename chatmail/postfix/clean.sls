{#- Postfix stops (after self-healing, which would restart it); main.cf
    (Debian's file, replaced by the formula: it goes too, see
    docs/clean.md), the tables, the config checker and the drop-in go.
    master.cf goes back to Debian's default, as Postfix's own postinst
    does when it is missing: Postfix always needs one, and the formula
    checks a new main.cf against the live master.cf when it builds the
    relay again.  Mail still queued stays in /var/spool/postfix. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/clean.jinja" import cleaned, service_dead_id with context %}
{%- set postfix = params.postfix %}
{%- set debian_master_cf = "/usr/share/postfix/master.cf.dist" %}
{%- set paths = [] %}
{%- for name in postfix.configs + postfix.tables if name != "master.cf" %}
{%-   do paths.append(postfix.conf_dir ~ "/" ~ name) %}
{%- endfor %}
{%- for script in postfix.scripts %}
{%-   do paths.append(postfix.scripts_dir ~ "/" ~ script) %}
{%- endfor %}
{{ cleaned("postfix",
    after=["chatmail.selfheal.clean"],
    units=["postfix"],
    unit_files=[postfix.dropin_dir ~ "/" ~ postfix.dropin_file],
    paths=paths) }}

chatmail-postfix-master-cf-debian-file-managed:
  file.managed:
    - name: {{ postfix.conf_dir }}/master.cf
    - source: {{ debian_master_cf }}
    - user: root
    - group: root
    - mode: "0644"
    # no Postfix installed: nothing to restore
    - onlyif: test -e {{ debian_master_cf }}
    - require:
      - service: {{ service_dead_id("postfix", "postfix") }}
