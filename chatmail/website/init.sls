include:
  - chatmail.website.package
  - chatmail.website.config
