{#- The relay's small website in /var/www/html (design.md §7.8): the formula's
    own pages, rendered with the settings, or the operator's folder
    (www_folder, a directory on the relay) copied as it is.  The account
    QR code (DCACCOUNT:https://D/new) is drawn on the relay by qrencode,
    as PNG and SVG, once per domain. -#}
{%- from "chatmail/map.jinja" import mapdata as chatmail, params with context %}
{%- from "chatmail/macros.jinja" import stage with context %}
{%- from "chatmail/libtofs.jinja" import files_switch with context %}
{%- set D = chatmail.mail_domain %}
{%- set www = params.website.www %}
{%- set invite = "DCACCOUNT:https://" ~ D ~ "/new" %}
{%- set pages = params.website.pages %}
{%- call stage("configure", "chatmail-website-config-skipped") %}

include:
  - chatmail.website.package

chatmail-website-www-directory:
  file.directory:
    - name: {{ www }}
    - user: root
    - group: root
    - mode: "0755"
    - makedirs: true

{%-   if chatmail.www_folder %}

chatmail-website-custom-cmd-run:
  cmd.run:
    - name: rsync -rlt --chown=www-data:www-data --chmod=D755,F644 {{ chatmail.www_folder }}/ {{ www }}/
    - unless: test -z "$(rsync -rlcn --out-format=%n {{ chatmail.www_folder }}/ {{ www }}/)"
    - onlyif: test -d {{ chatmail.www_folder }}
    - require:
      - file: chatmail-website-www-directory
      - sls: chatmail.website.package
{%-   else %}
{%-     for page in pages %}

chatmail-website-{{ page | replace(".", "-") }}-file-managed:
  file.managed:
    - name: {{ www }}/{{ page }}
    - source: {{ files_switch("website", page ~ ".j2", "chatmail-website-" ~ (page | replace(".", "-")) ~ "-file-managed") }}
    - template: jinja
    - context:
        chatmail: {{ chatmail | json }}
        invite: {{ invite }}
    - user: root
    - group: root
    - mode: "0644"
    - require:
      - file: chatmail-website-www-directory
{%-     endfor %}
{%-   endif %}

{%-   for kind, ext in [("PNG", "png"), ("SVG", "svg")] %}

chatmail-website-qr-{{ ext }}-cmd-run:
  cmd.run:
    - name: qrencode -t {{ kind }} -l H -s 8 -m 2 -o {{ www }}/qr-chatmail-invite-{{ D }}.{{ ext }} '{{ invite }}'
    - creates: {{ www }}/qr-chatmail-invite-{{ D }}.{{ ext }}
    - require:
      - file: chatmail-website-www-directory
      - sls: chatmail.website.package
{%-   endfor %}

{%- endcall %}
