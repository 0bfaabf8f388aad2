include:
  - chatmail.unbound.package
  - chatmail.unbound.config
  - chatmail.unbound.service
