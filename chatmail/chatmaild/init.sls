include:
  - chatmail.chatmaild.package
  - chatmail.chatmaild.config
