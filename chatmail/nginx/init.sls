include:
  - chatmail.nginx.package
  - chatmail.nginx.config
  - chatmail.nginx.service
