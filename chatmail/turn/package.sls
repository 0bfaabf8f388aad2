{#- Debian's coturn as the relay's STUN/TURN server (upstream runs its own
    chatmail-turn binary; coturn's REST-style shared secret gives clients
    the same kind of time-limited credentials). -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/unbound/noautostart.jinja" import pkgs_installed_without_autostart %}
{%- if "install" in chatmail.stages %}
{{ pkgs_installed_without_autostart("turn", params.packages.turn) }}
{%- else %}

chatmail-turn-package-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
