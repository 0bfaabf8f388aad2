include:
  - chatmail.dovecot.package
  - chatmail.dovecot.config
  - chatmail.dovecot.service
