#!/usr/bin/env bash
# Installs everything cellwall's build, demo and tests need (Debian 12, as root), then builds.
#   scripts/setup.sh [PRESET...]   (default: release)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: run as root (it installs packages with apt-get)" >&2
  exit 1
fi

packages=(
  # build
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libasio-dev nlohmann-json3-dev libtomlplusplus-dev libspdlog-dev libfmt-dev libcli11-dev
  libsqlite3-dev libmnl-dev libssl-dev libmicrohttpd-dev libsystemd-dev liblua5.4-dev libbpf-dev
  libhyperscan-dev libpcre2-dev
  # run (iptables: one rule per cell and gateway that finishes UDP checksums, docs/ovs.md)
  openvswitch-switch openvswitch-common iproute2 nftables iptables dnsmasq-base ethtool slirp4netns procps psmisc
  # VPN uplinks of network environments (docs/environments.md); openssl makes the tests' PKI
  wireguard-go wireguard-tools openvpn openssl
  # VM cells (docs/vm-cells.md): QEMU's microvm and a Debian guest kernel with 9p modules
  qemu-system-x86 linux-image-amd64
  # tests and demo
  python3 python3-pytest curl netcat-openbsd iperf3 nmap tcpdump tshark iputils-ping
  # benchmarks (bench/nginx_bench.py): an HTTP server in a cell and load generators;
  # bench/ofload_check.py: a reference OpenFlow controller to check cw-ofload against
  nginx apache2-utils wrk openvswitch-testcontroller
  # the web UI's browser tests: Debian's chromium, driven by playwright-core (npm, below)
  chromium fonts-liberation fonts-dejavu-core
  # desktop notification tests: a private session bus and a notification service in Python
  dbus-daemon python3-dbus python3-gi
)
# Node.js and npm for the browser tests' driver; the machine's own when it has them.
command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # tshark asks whether non-root users may capture; answer no without a prompt.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  # Packages must not start services (nginx would listen on the host's port 80): a
  # policy-rc.d for the install only, unless the machine has its own.
  own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && own_policy=1
  fi
  status=0
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || status=$?
  [ "$own_policy" -eq 1 ] && rm -f /usr/sbin/policy-rc.d
  [ "$status" -eq 0 ] || { echo "setup: apt-get install failed" >&2; exit "$status"; }
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "setup: the browser tests need Node.js 20 or newer (playwright-core); this is $(node --version)" >&2
  exit 1
fi
# playwright-core at the version package-lock.json pins; it drives /usr/bin/chromium and
# downloads no browser of its own.
if ! npm ci --prefix tests/web --no-audit --no-fund --loglevel=error >/dev/null; then
  echo "setup: npm ci in tests/web failed (is the npm registry reachable?)" >&2
  exit 1
fi
# The Debian package starts a system Open vSwitch where systemd runs; cellwall runs its own
# embedded instance and leaves any system one alone.

presets=("$@")
[ "${#presets[@]}" -gt 0 ] || presets=(release)
for preset in "${presets[@]}"; do
  echo "setup: building preset $preset"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j"$(nproc)"
done
