#!/usr/bin/env bash
# Installs what the dashboard's browser test needs: Debian's chromium and chromium-driver. Idempotent: does
# nothing when both are installed. The test runs with BARRACK_TEST_BROWSER=1 (docs/dashboard.md).
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium chromium-driver >/dev/null
chromium --version
