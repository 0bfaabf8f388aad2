{#- Self-healing reaction: restart Postfix or Dovecot where a beacon saw it down.

    One file for both ways of running it (docs/selfheal.md):
    * on a salt-master, for tag salt/beacon/<id>/chatmail_services/<unit>:
      ``data`` is one beacon event; the restart runs on the minion that
      reported it (``local.service.restart``, tgt = data['id']);
    * in the relay's own masterless minion (chatmail-selfheal.service),
      for tag __beacons_return: ``data['beacons']`` lists the beacon events
      of one loop turn (a masterless minion forwards nothing to
      salt/beacon/...), and the restart runs right there (``caller.*``).
    Only the units the formula watches are restarted, and only when the
    event says they are not running; anything else renders no reaction.
    They come from one table, chatmail/parameters/ (selfheal.watched: the
    components, each with its unit, per release: on Debian 12 postfix@-,
    Debian's real Postfix daemon: postfix.service is a oneshot wrapper that
    stays "active" when the daemon is dead; on Debian 13 postfix.service,
    which runs the master itself): in the relay's own minion, from that
    minion's chatmail_services beacon config (which chatmail.selfheal wrote
    from the table for the relay's release); on a salt-master, which has no
    beacon config and serves relays of every release, from the table itself
    (salt://chatmail/parameters/, defaults.yaml merged with each release's
    osfinger file, next to this file): the units of any supported release.
    A relay's beacon reports only the units of its own release, so each is
    restarted by the name its release runs. -#}
{%- set beacon = (opts.get("beacons") or {}).get("chatmail_services") %}
{%- set watched = [] %}
{%- if beacon %}
{%-   for item in beacon if item is mapping and "services" in item %}
{%-     do watched.extend(item.services) %}
{%-   endfor %}
{%- else %}
{%-   from "chatmail/selfheal/units.jinja" import watched_units %}
{%-   import_yaml "chatmail/parameters/defaults.yaml" as defaults %}
{%-   for osfinger in defaults.releases %}
{%-     import_yaml "chatmail/parameters/osfinger/" ~ osfinger ~ ".yaml" as release %}
{%-     do watched_units(salt["slsutil.merge"](defaults, release or {}, strategy="recurse"), watched) %}
{%-   endfor %}
{%- endif %}
{%- set local = tag == "__beacons_return" %}
{%- set events = data.get("beacons", []) if local else [{"tag": tag, "data": data}] %}
{%- for event in events %}
{%-   set parts = event.get("tag", "").split("/") %}
{%-   set body = event.get("data") or {} %}
{%-   set unit = body.get("service_name") %}
{%-   set state = body.get(unit) if unit in body else {} %}
{%-   if parts[:2] == ["salt", "beacon"] and parts[3:4] == ["chatmail_services"]
        and unit in watched and state is mapping and state.get("running") is sameas false %}
{%-     set message = "chatmail selfheal: " ~ unit ~ " on " ~ body.get("id", parts[2]) ~ " reported not running; restarting it" %}
{%-     if local %}

chatmail-selfheal-{{ unit }}-log:
  caller.log.warning:
    - args:
      - message: {{ message | json }}

chatmail-selfheal-{{ unit }}-restart:
  caller.service.restart:
    - args:
      - name: {{ unit | json }}
{%-     else %}

chatmail-selfheal-{{ unit }}-log:
  local.log.warning:
    - tgt: {{ body.id | json }}
    - args:
      - message: {{ message | json }}

chatmail-selfheal-{{ unit }}-restart:
  local.service.restart:
    - tgt: {{ body.id | json }}
    - args:
      - name: {{ unit | json }}
{%-     endif %}
{%-   endif %}
{%- endfor %}
