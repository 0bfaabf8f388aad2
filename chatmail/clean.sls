{#- Undo the whole relay (docs/clean.md): every component's clean.sls, in
    the reverse order of chatmail/init.sls's includes, so self-healing goes
    first and each daemon stops before what it depends on.  Mailboxes, DKIM
    keys, certificates and the TURN secret stay; Debian packages stay
    installed. -#}
{%- import_yaml "chatmail/init.sls" as relay %}
include:
{%- for sls in relay.include | reverse %}
  - {{ sls }}.clean
{%- endfor %}
