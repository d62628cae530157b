#!/usr/bin/env bash
# Installs what the dashboard's real-browser test (tests/dashboard.rs) needs: Debian's Chromium
# (unless already there) and playwright-core, pinned in dashboard/package-lock.json (npm ci with
# --ignore-scripts: no browser download). Measured on this Debian 12 image: ~18 s for Chromium
# with a warm apt cache (apt-get update + ~100 MB of packages; allow 1-2 minutes cold), ~2 s for
# npm ci.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v chromium >/dev/null 2>&1; then
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends chromium
fi
echo "chromium.sh: $(chromium --version 2>/dev/null | head -n 1)"
if command -v npm >/dev/null 2>&1; then
  (cd "$REPO/dashboard" && npm ci --ignore-scripts --no-audit --no-fund --silent)
  echo "chromium.sh: playwright-core installed in dashboard/node_modules"
else
  echo "chromium.sh: no npm; the dashboard's browser test will say SKIPPED" >&2
fi
