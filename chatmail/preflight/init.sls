{#- Pre-flight: first the platform.  On a release the formula does not
    support (chatmail/parameters/defaults.yaml, releases) the states would
    write another release's configuration, so the run stops there, naming
    the platform and the supported releases; failhard, so nothing changes.
    Then the ports (design.md §8.5): before anything is installed or started, no
    program other than the relay's own may hold a port the relay needs
    (exim4 on 25, apache2 on 80/443, ...).  It runs for every stage
    selection, not only "activate": it only reads, and a foreign listener
    found before "install" is cheaper to fix than daemons that fail to
    bind later; on a deployed relay the listeners are the relay's own and
    the check passes.  failhard stops the whole run on a conflict, like
    upstream's "Deploy failed: port P is occupied by NAME".  The ports and
    who may hold them come from chatmail.ports (the settings table's port
    numbers); `salt-call chatmail.port_conflicts` shows the same answer. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}

chatmail-preflight-platform-supported:
  chatmail_preflight.platform_supported:
    - name: {{ grains.get("osfinger", "") | json }}
    - supported: {{ params.releases | json }}
    - failhard: true

chatmail-preflight-ports-free:
  chatmail_preflight.ports_free:
    - name: ports of the relay {{ chatmail.mail_domain }}
    - failhard: true
