{%- from "chatmail/map.jinja" import mapdata as chatmail with context %}
{%- if "configure" in chatmail.stages %}

chatmail-iroh-config-file-managed:
  file.managed:
    - name: /etc/iroh-relay.toml
    - mode: "0644"
    - contents: |
        # managed by the chatmail formula; nginx proxies https://D/relay here
        enable_relay = true
        http_bind_addr = "[::]:3340"
        enable_stun = false
        enable_metrics = false
        metrics_bind_addr = "127.0.0.1:9092"

chatmail-iroh-unit-file-managed:
  file.managed:
    - name: /etc/systemd/system/iroh-relay.service
    - mode: "0644"
    - contents: |
        # managed by the chatmail formula
        [Unit]
        Description=iroh relay for Delta Chat peer-to-peer connections
        After=network.target

        [Service]
        ExecStart=/usr/local/bin/iroh-relay --config-path /etc/iroh-relay.toml
        User=iroh
        Group=iroh
        Restart=on-failure
        RestartSec=5s

        [Install]
        WantedBy=multi-user.target

{%- else %}

chatmail-iroh-config-skipped:
  test.nop:
    - name: stage not selected
{%- endif %}
