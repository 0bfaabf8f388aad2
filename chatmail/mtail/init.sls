include:
  - chatmail.mtail.package
  - chatmail.mtail.config
  - chatmail.mtail.service
