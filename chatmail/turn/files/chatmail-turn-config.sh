#!/bin/sh
# managed by the chatmail formula.
# Usage: chatmail-turn-config CONF SECRET OUT
# Writes OUT = CONF + "static-auth-secret=<SECRET's content>", readable by
# coturn's user only, so the secret stays out of /etc/turnserver.conf and
# off the command line.
set -eu
conf=$1 secret=$2 out=$3
umask 077
tmp="$out.tmp"
{ cat "$conf"; printf 'static-auth-secret=%s\n' "$(cat "$secret")"; } > "$tmp"
if id turnserver >/dev/null 2>&1; then chown turnserver:turnserver "$tmp"; fi
mv "$tmp" "$out"
