{#- Debian's coturn as the relay's STUN/TURN server (upstream runs its own
    chatmail-turn binary; coturn's REST-style shared secret gives clients
    the same kind of time-limited credentials). -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- from "chatmail/packages.jinja" import pkgs_installed_without_autostart %}
{%- call stage("install", "chatmail-turn-package-skipped") %}
{{ pkgs_installed_without_autostart("turn", params.packages.turn) }}
{%- endcall %}
