include:
  - chatmail.iroh.package
  - chatmail.iroh.config
  - chatmail.iroh.service
