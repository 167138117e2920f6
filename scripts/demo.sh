#!/usr/bin/env bash
# The main job: set up a fresh machine and run the lab demo (a LoadBalancer Service gets an
# EXTERNAL-IP and a client namespace reaches it). Run as root. Remove the lab with: lbctl lab down
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/lbctl lab demo "$@"
