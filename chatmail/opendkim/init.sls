include:
  - chatmail.opendkim.package
  - chatmail.opendkim.config
  - chatmail.opendkim.service
