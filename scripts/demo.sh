#!/usr/bin/env bash
# The demo: Open vSwitch + cellwalld, a test host (in its own namespace) serving HTTP, and two
# cells running the same curl — one whose policy allows the server, one whose policy denies
# it — then the flows the controller installed. Everything is torn down at the end (or on
# Ctrl-C). Traffic never leaves this machine: the environment's uplink is the test host.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh release

bin=build/release/src
state=$(mktemp -d /tmp/cw-demo-XXXXXX)
host=cw-demo-host
daemon_pid=""
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
  set +e
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -TERM "$daemon_pid"; wait "$daemon_pid"
  fi
  ip netns pids "$host" 2>/dev/null | xargs -r kill
  ip netns del "$host" 2>/dev/null
  rm -rf "$state"
}
trap cleanup EXIT INT TERM

say "a test host (namespace $host) that stands in for the internet"
ip netns add "$host"
ip -n "$host" link set lo up
mkdir -p "$state/www"
echo "hello from the test host" > "$state/www/index.html"

cat > "$state/cellwalld.toml" <<CONF
[env.default]
pool = "10.200.0.0/16"
dns = ["10.250.0.1"]
[env.default.uplink]
kind = "netns"
netns = "$host"
address = "10.250.0.2/24"
peer_address = "10.250.0.1/24"
CONF

say "cellwalld: embedded Open vSwitch, bridge cw-br0, OpenFlow over a root-only UNIX socket (no TCP listener)"
"$bin/daemon/cellwalld" --state-dir "$state" --config "$state/cellwalld.toml" --ui-listen 127.0.0.1:0 \
  > "$state/cellwalld.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 1 300); do
  grep -q "programmed" "$state/cellwalld.log" 2>/dev/null && break
  kill -0 "$daemon_pid" 2>/dev/null || { cat "$state/cellwalld.log"; exit 1; }
  sleep 0.1
done
cat "$state/cellwalld.log"
ip netns exec "$host" /usr/bin/python3 -m http.server 8080 --directory "$state/www" >/dev/null 2>&1 &
ip netns exec "$host" dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces \
  --listen-address=10.250.0.1 --pid-file= --user=root --address=/test.example/10.250.0.1 >/dev/null 2>&1 &
sleep 0.5

cat > "$state/browser.toml" <<'POL'
default = "deny"
[[allow]]
proto = "tcp"
hosts = "test.example"
ports = 8080
comment = "the test host's web server, by its name (the only name this cell may resolve)"
POL
cat > "$state/blocked.toml" <<'POL'
default = "deny"
POL
cw() { "$bin/cli/cellwall" --state-dir "$state" "$@"; }

say "cell 'browser' (policy: allow tcp test.example:8080, deny the rest, and resolve no other name)"
cat "$state/browser.toml"
set +e
cw run --app browser --policy "$state/browser.toml" --user nobody -- \
  sh -c 'curl -sS --max-time 5 http://test.example:8080/index.html; status=$?; sleep 6; exit $status' &
browser=$!
sleep 1

say "cell 'blocked' (policy: deny everything)"
cat "$state/blocked.toml"
cw run --app blocked --policy "$state/blocked.toml" --user nobody -- \
  curl -sS --max-time 3 http://10.250.0.1:8080/index.html
echo "-> 'blocked' exit status $? (its connection never left the switch)"

say "cells running now, and the flows cellwalld installed"
echo "(table 0: anti-spoofing and ARP answers; table 1: scripts' flows; table 2: one exact flow pair per connection)"
cw ps
cw flows
wait "$browser"
echo "-> 'browser' exit status $?"

say "cell 'asker' (policy: default = \"prompt\"): its connection is held until someone answers"
printf 'default = "prompt"\nprompt_timeout = "30s"\n' > "$state/asker.toml"
cw run --app asker --policy "$state/asker.toml" --user nobody -- \
  curl -sS --max-time 20 -o /dev/null -w 'asker: HTTP %{http_code}\n' http://test.example:8080/index.html &
asker=$!
question=""
for _ in $(seq 1 100); do
  question=$(cw prompt --json | head -1)
  [ -n "$question" ] && break
  sleep 0.1
done
echo "the open question: $question"
url=$(cw ui)
echo "the web UI (open it in a browser on this machine while the demo runs): $url"
id=$(printf '%s' "$question" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
echo "answering through the web UI's API, as its 'Allow for 5 minutes' button does:"
curl -sS -H "Authorization: Bearer ${url##*token=}" -H 'Content-Type: application/json' \
  -d "{\"cmd\":\"prompt.answer\",\"id\":$id,\"action\":\"allow\",\"scope\":\"host\",\"lifetime\":\"5m\"}" \
  "${url%%\?token=*}api" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("-> ok" if r["ok"] else r); [print(x["text"]) for x in r.get("rules", [])]'
echo "without the token the UI answers nothing: HTTP $(curl -s -o /dev/null -w '%{http_code}' "${url%%\?token=*}")"
wait "$asker"

say "a Lua script on the decision path: the shipped port-scan guard"
cw script load lua/portscan_guard.lua --name guard
printf 'default = "allow"\n' > "$state/scanner.toml"
echo "cell 'scanner' (policy: allow everything) runs nmap against the test host, then tries a real request:"
cw run --app scanner --policy "$state/scanner.toml" --user nobody -- sh -c \
  'nmap -sT -Pn -n -p 1-200 --max-retries 1 10.250.0.1 | grep -E "open|filtered|Nmap done"; curl -sS --max-time 3 -o /dev/null -w "scanner: HTTP %{http_code}\n" http://10.250.0.1:8080/ || true'
cw script status guard
echo "cell 'browser' again, unaffected:"
cw run --app browser --policy "$state/browser.toml" --user nobody -- \
  curl -sS --max-time 5 -o /dev/null -w 'browser: HTTP %{http_code}\n' http://test.example:8080/index.html

say "a VM cell: the same policy, but the app runs on its own kernel in a micro-VM (docs/vm-cells.md)"
# --vm-accel auto (the default): KVM when QEMU can run under it here, else software emulation,
# which it says on stderr (and remembers, when KVM is there but QEMU dies under it).
cw run --vm --vm-accel auto --app browser --policy "$state/browser.toml" --user nobody -- sh -c \
  'echo "in the VM: kernel $(uname -r), $(nproc) CPU"; curl -sS --max-time 5 -o /dev/null -w "allowed: HTTP %{http_code}\n" http://test.example:8080/index.html; curl -sS --max-time 3 http://10.250.0.1:7777/ || echo "denied: no answer from port 7777"'
echo "-> exit status $?"
set -e

say "decision counters"
cw status

say "tearing down"
cw stop >/dev/null
wait "$daemon_pid" || true
daemon_pid=""
echo "left behind: $(ip netns list | grep -c '^cw-[cg]' || true) cell/gateway namespaces"
