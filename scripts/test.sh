#!/usr/bin/env bash
# The test job: set up a fresh machine, then lint, type-check, check layering and run every test
# (unit, netns as root, contract incl. real API servers when they can be built). Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
echo "== ruff";          .venv/bin/ruff check .
echo "== mypy --strict"; .venv/bin/mypy
echo "== import-linter"; .venv/bin/lint-imports
if [ -f scripts/build-real-apiservers.sh ] && [ -z "${LBS_SKIP_REAL_APISERVERS:-}" ]; then
  echo "== real API servers (cached build)"
  bash scripts/build-real-apiservers.sh || echo "real API servers: build FAILED; the contract suite says which runs are missing"
fi
echo "== pytest"
.venv/bin/lbctl lab down >/dev/null 2>&1 || true
exec .venv/bin/pytest -p no:cacheprovider "$@"
