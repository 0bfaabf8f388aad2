include:
  - chatmail.journald.config
