#!/usr/bin/env bash
# Installs everything lbspeaker needs on a fresh Debian 12 machine (run as root). Idempotent.
#   bash scripts/setup.sh          # runtime: iproute2, kubectl, a venv with lbspeaker
#   bash scripts/setup.sh --test   # plus what the test suite needs (BGP/VRRP peers, dev tools)
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

pkgs=()
command -v ip >/dev/null 2>&1 || pkgs+=(iproute2)
command -v kubectl >/dev/null 2>&1 || pkgs+=(kubernetes-client)
command -v sysctl >/dev/null 2>&1 || pkgs+=(procps)
if [ "$want_test" = 1 ]; then
  command -v bird >/dev/null 2>&1 || pkgs+=(bird2)
  [ -x /usr/lib/frr/bgpd ] || pkgs+=(frr)
  command -v keepalived >/dev/null 2>&1 || pkgs+=(keepalived)
  command -v tcpdump >/dev/null 2>&1 || pkgs+=(tcpdump)
  command -v arping >/dev/null 2>&1 || pkgs+=(arping)
  command -v ndisc6 >/dev/null 2>&1 || pkgs+=(ndisc6)
  # the real-cluster lab and its e2e suite: PKI, the client's HTTP requests, nsenter/unshare
  command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
  command -v curl >/dev/null 2>&1 || pkgs+=(curl)
  command -v nsenter >/dev/null 2>&1 || pkgs+=(util-linux)
fi
if [ "${#pkgs[@]}" -gt 0 ]; then
  echo "setup: apt-get install ${pkgs[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  # Debian starts these daemons as services; the tests run their own instances in namespaces.
  for svc in bird frr keepalived; do
    (command -v service >/dev/null 2>&1 && service "$svc" stop >/dev/null 2>&1) || true
  done
fi

if [ ! -x .venv/bin/python ]; then
  if ! python3 -m venv .venv 2>/dev/null; then
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    rm -rf .venv && python3 -m venv .venv
  fi
fi
extras="bgp"
[ "$want_test" = 1 ] && extras="dev,bgp"
.venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/pip install -q -e ".[${extras}]"
ln -sf "$PWD/.venv/bin/lbctl" /usr/local/bin/lbctl
echo "setup: ok ($(.venv/bin/python --version), lbctl -> $PWD/.venv/bin/lbctl)"
