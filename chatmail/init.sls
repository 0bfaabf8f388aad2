# Apply the whole relay.  The order of includes is the order of the run
# (design.md §8.4: resolver first, certificates before the daemons that use them,
# chatmaild sockets before Dovecot, Dovecot before Postfix because Dovecot
# creates Postfix's private/auth socket, nginx last).  Each component's
# init.sls includes its package (install stage), config (configure stage)
# and service (activate stage) files.
include:
  - chatmail.preflight
  - chatmail.base
  - chatmail.legacy
  - chatmail.journald
  - chatmail.unbound
  - chatmail.turn
  - chatmail.iroh
  - chatmail.tls
  - chatmail.website
  - chatmail.chatmaild
  - chatmail.opendkim
  - chatmail.dovecot
  - chatmail.postfix
  - chatmail.fcgiwrap
  - chatmail.nginx
  - chatmail.mtail
  - chatmail.version
  - chatmail.backup
  - chatmail.selfheal
