include:
  - chatmail.selfheal.config
  - chatmail.selfheal.service
