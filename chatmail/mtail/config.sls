{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- from "chatmail/libtofs.jinja" import files_switch with context %}
{%- if "configure" in chatmail.stages and chatmail.mtail_address %}

chatmail-mtail-program-file-managed:
  file.managed:
    - name: /etc/mtail/delivered_mail.mtail
    - source: {{ files_switch("mtail", "delivered_mail.mtail", "chatmail-mtail-program-file-managed") }}
    - mode: "0644"
    - makedirs: true
    - check_cmd: /bin/sh -c 'd=$(mktemp -d) && cp "$0" "$d/p.mtail" && /usr/bin/mtail --compile_only --progs "$d"; r=$?; rm -rf "$d"; exit $r'

chatmail-mtail-unit-file-managed:
  file.managed:
    - name: /etc/systemd/system/mtail.service
    - mode: "0644"
    - contents: |
        # managed by the chatmail formula: metrics from the journal, never public
        [Unit]
        Description=mtail: chatmail relay metrics on {{ chatmail.mtail_address }}:3903
        After=network-online.target
        Wants=network-online.target

        [Service]
        Type=simple
        ExecStart=/bin/sh -c 'journalctl -f -o short-iso -n 0 | \
          /usr/bin/mtail --address={{ chatmail.mtail_address }} --port=3903 \
          --progs /etc/mtail --logtostderr --logs /dev/stdin'
        Restart=on-failure

        [Install]
        WantedBy=multi-user.target

{%- else %}

chatmail-mtail-config-skipped:
  test.nop:
    - name: stage not selected or no mtail_address
{%- endif %}
