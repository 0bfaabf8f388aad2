{#- chatmail.legacy only removes leftovers of older deployments; what it
    removed is not brought back. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}

chatmail-legacy-clean-nothing-to-do:
  test.nop:
    - name: legacy leftovers stay removed
