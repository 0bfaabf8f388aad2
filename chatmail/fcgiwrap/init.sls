include:
  - chatmail.fcgiwrap.package
  - chatmail.fcgiwrap.config
  - chatmail.fcgiwrap.service
