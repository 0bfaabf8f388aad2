include:
  - chatmail.tls.package
  - chatmail.tls.config
  - chatmail.tls.service
