#!/usr/bin/env bash
# Installs Debian's Chromium for the dashboard's real-browser test (tests/dashboard.rs), unless
# it is already there. About 1-2 minutes on a fresh Debian image (apt-get update + ~100 MB).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  echo "chromium: $(chromium --version 2>/dev/null || echo present)"
  exit 0
fi
sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
sudo_if_needed apt-get update -qq
DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq --no-install-recommends chromium
chromium --version
