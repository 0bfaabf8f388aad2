{#- Move a relay to a new machine, from the master (docs/migration.md):
    salt-run state.orchestrate chatmail.orch.migrate with pillar chatmail_migrate: from OLD, to NEW (minion ids)
    Each step is a runner function of _runners/chatmail_orch.py that checks its own result;
    a failed step stops the chain and prints the command that lets OLD take mail again. #}
{%- set m = salt['pillar.get']('chatmail_migrate', {}) %}
{%- set ids = {'old': m.get('from', ''), 'new': m.get('to', '')} %}
{%- set steps = ['connect', 'precopy', 'install', 'mail_off', 'final_sync', 'dns', 'activate'] %}

chatmail-migrate-sync-runners:
  salt.runner:
    - name: saltutil.sync_runners

{%- for step in steps %}

chatmail-migrate-{{ step }}:
  salt.runner:
    - name: chatmail_orch.migrate_{{ step }}
    - old: {{ ids.old | json }}
    - new: {{ ids.new | json }}
{%- if step == 'connect' and m.get('address') %}
    - address: {{ m.address | json }}
{%- elif step == 'dns' %}
    - hook: {{ m.get('hook') | json }}
    - confirmed: {{ m.get('confirmed', False) | json }}
    - confirm_timeout: {{ m.get('confirm_timeout', 3600) | json }}
{%- endif %}
    - require:
      - salt: chatmail-migrate-{{ loop.previtem if not loop.first else 'sync-runners' }}
{%- endfor %}

{#- no require: the move's SSH key goes whatever happened before #}
chatmail-migrate-cleanup:
  salt.runner:
    - name: chatmail_orch.migrate_cleanup
    - old: {{ ids.old | json }}
    - new: {{ ids.new | json }}
    - order: last
