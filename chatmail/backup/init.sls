include:
  - chatmail.backup.package
  - chatmail.backup.config
  - chatmail.backup.service
