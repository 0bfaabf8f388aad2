{#- Self-healing reaction: restart Postfix or Dovecot where a beacon saw it down.

    One file for both ways of running it (docs/selfheal.md):
    * on a salt-master, for tag salt/beacon/<id>/chatmail_services/<unit>:
      ``data`` is one beacon event; the restart runs on the minion that
      reported it (``local.service.restart``, tgt = data['id']);
    * in the relay's own masterless minion (chatmail-selfheal.service),
      for tag __beacons_return: ``data['beacons']`` lists the beacon events
      of one loop turn (a masterless minion forwards nothing to
      salt/beacon/...), and the restart runs right there (``caller.*``).
    Only the two units the formula watches are restarted, and only when the
    event says they are not running; anything else renders no reaction.
    postfix@- is Debian's real Postfix daemon (postfix.service is a oneshot
    wrapper that stays "active" when the daemon is dead). -#}
{%- set watched = ["postfix@-", "dovecot"] %}
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
