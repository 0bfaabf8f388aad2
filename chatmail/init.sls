# Apply the whole relay.  The order of includes is the order of the run:
# base system, resolver, TLS, the chatmaild services, then the mail daemons
# (Dovecot before Postfix: Dovecot creates Postfix's private/auth socket),
# then the web front.  Each component's init.sls includes its own
# package (install stage), config (configure stage) and service (activate stage).
include:
  - chatmail.base
  - chatmail.chatmaild
