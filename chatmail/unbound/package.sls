{#- unbound with Debian's DNSSEC root key (dns-root-data: Debian's
    unbound-helper copies /usr/share/dns/root.key into the auto trust anchor
    at every start, no network needed).  Installed without autostart so the
    resolver first runs with the formula's config. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- from "chatmail/packages.jinja" import pkgs_installed_without_autostart %}
{%- call stage("install", "chatmail-unbound-package-skipped") %}
{{ pkgs_installed_without_autostart("unbound", params.packages.unbound) }}
{%- endcall %}
