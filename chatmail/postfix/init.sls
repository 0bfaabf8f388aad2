include:
  - chatmail.postfix.package
  - chatmail.postfix.config
  - chatmail.postfix.service
