{#- Apply the formula the master serves now to the fleet, a batch at a time, each relay checked
    (docs/fleet.md):
    salt-run state.orchestrate chatmail.orch.upgrade with pillar chatmail_upgrade: target, batch, bound
    The runner stops at the first relay whose apply or health check fails; later relays stay untouched. #}
{%- set u = salt['pillar.get']('chatmail_upgrade', {}) %}

chatmail-upgrade-sync-runners:
  salt.runner:
    - name: saltutil.sync_runners

chatmail-upgrade:
  salt.runner:
    - name: chatmail_orch.upgrade
    - target: {{ u.get('target', '*') | json }}
    - tgt_type: {{ u.get('tgt_type', 'glob') | json }}
    - batch: {{ u.get('batch', 1) | json }}
    - bound: {{ u.get('bound', 60) | json }}
    - require:
      - salt: chatmail-upgrade-sync-runners
