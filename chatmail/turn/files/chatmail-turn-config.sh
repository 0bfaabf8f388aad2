#!/bin/sh
# managed by the chatmail formula.
# Usage: chatmail-turn-config CONF SECRET OUT
# Writes OUT = CONF + "static-auth-secret=<SECRET's content>", readable by
# coturn's user only, so the secret stays out of /etc/turnserver.conf and
# off the command line.
# First waits (up to CHATMAIL_TURN_ADDRESS_WAIT seconds, default 60) for a
# global IP address: coturn picks its listeners once, at start, and exits
# when the host has only loopback (early boot, an interface being set up).
set -eu
conf=$1 secret=$2 out=$3
wait=${CHATMAIL_TURN_ADDRESS_WAIT:-60} waited=0
until ip -o addr show scope global | grep -q .; do
    if [ "$waited" -ge "$wait" ]; then
        echo "chatmail-turn-config: no global IP address after ${waited}s; coturn needs one to listen on" >&2
        exit 1
    fi
    sleep 1
    waited=$((waited + 1))
done
umask 077
tmp="$out.tmp"
{ cat "$conf"; printf 'static-auth-secret=%s\n' "$(cat "$secret")"; } > "$tmp"
if id turnserver >/dev/null 2>&1; then chown turnserver:turnserver "$tmp"; fi
mv "$tmp" "$out"
