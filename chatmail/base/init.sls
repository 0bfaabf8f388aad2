include:
  - chatmail.base.package
  - chatmail.base.config
