#!/usr/bin/env bash
# Installs the Proxmox Monitor agent on this Proxmox VE host.
# Usage: install-agent.sh BINARY SERVER_URL HOST_ID   (the token is read from stdin)
#   printf %s "$TOKEN" | ./install-agent.sh ./proxmox-monitor-agent_linux_amd64 wss://monitor.example.com/mqtt pve-host-01
# BINARY is the static agent for this host's architecture, built by scripts/build-agents:
# dist/proxmox-monitor-agent_linux_amd64 or dist/proxmox-monitor-agent_linux_arm64. It is
# installed as /usr/bin/proxmox-monitor-agent (where the Debian package puts it: use one
# or the other), next to proxmox-monitor-agent.service.
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: printf %s \"\$TOKEN\" | $0 BINARY SERVER_URL HOST_ID" >&2
  exit 2
fi
binary=$1 url=$2 host=$3
IFS= read -r token || true
[ -n "$token" ] || { echo "error: no token on stdin; pipe the token from 'proxmox-monitor host add'" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)

install -m 0755 "$binary" /usr/bin/proxmox-monitor-agent
install -d -m 0700 /etc/proxmox-monitor
umask 077
cat > /etc/proxmox-monitor/agent.toml <<TOML
server_url = "$url"
token = "$token"
host_id = "$host"

[intervals]
fast_seconds = 30
medium_seconds = 300
slow_seconds = 1800
TOML
install -m 0644 "$here/proxmox-monitor-agent.service" /etc/systemd/system/proxmox-monitor-agent.service
/usr/bin/proxmox-monitor-agent --config /etc/proxmox-monitor/agent.toml --check
systemctl daemon-reload
systemctl enable --now proxmox-monitor-agent
echo "installed; follow it with: journalctl -u proxmox-monitor-agent -f"
