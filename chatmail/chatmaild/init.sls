include:
  - chatmail.chatmaild.package
  - chatmail.chatmaild.config
  - chatmail.chatmaild.service
