{#- The pre-flight check only reads: nothing to undo. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}

chatmail-preflight-clean-nothing-to-do:
  test.nop:
    - name: the pre-flight check of {{ chatmail.mail_domain }} changes nothing
