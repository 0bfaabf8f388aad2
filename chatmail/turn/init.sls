include:
  - chatmail.turn.package
  - chatmail.turn.config
  - chatmail.turn.service
