{#- nginx.conf (checked with `nginx -t` before it replaces the live one,
    which needs the certificate: hence the tls requisite), and the two
    well-known files every client and MTA fetches. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- from "chatmail/libtofs.jinja" import files_switch with context %}
{%- if "configure" in chatmail.stages %}
{%-   set files = [
  ("conf", "/etc/nginx/nginx.conf", "nginx.conf.j2", "nginx -t -q -c"),
  ("autoconfig", "/var/www/html/.well-known/autoconfig/mail/config-v1.1.xml", "config-v1.1.xml.j2", none),
  ("mta-sts", "/var/www/html/.well-known/mta-sts.txt", "mta-sts.txt.j2", none),
] %}

include:
  - chatmail.nginx.package
  - chatmail.tls.service
{%-   for thing, path, template, check in files %}

chatmail-nginx-{{ thing }}-file-managed:
  file.managed:
    - name: {{ path }}
    - source: {{ files_switch("nginx", template, "chatmail-nginx-" ~ thing ~ "-file-managed") }}
    - template: jinja
    - context:
        chatmail: {{ chatmail | json }}
    - user: root
    - group: root
    - mode: "0644"
    - makedirs: true
{%-     if check %}
    - check_cmd: {{ check }}
{%-     endif %}
    - require:
      - sls: chatmail.nginx.package
      - sls: chatmail.tls.service
{%-   endfor %}

{%- else %}

chatmail-nginx-config-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
