#!/usr/bin/env bash
# Installs a pinned requirements file for one of the Python test suites:
#   bash scripts/setup/python-requirements.sh <requirements file> <suite name>
# Idempotent: does nothing when the pinned versions are installed. Installs python3 itself if missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

requirements="$1"
suite="$2"

if ! command -v python3 >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq python3 python3-pip python3-venv >/dev/null
fi

installed() {
  python3 - "$requirements" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, wanted = line.split("==")
    try:
        if version(name) != wanted:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PY
}

if installed; then
  echo "$suite: $(tr '\n' ' ' < <(grep -v '^#' "$requirements")) installed"
else
  python3 -m pip install --quiet --disable-pip-version-check -r "$requirements" ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages -r "$requirements"
fi
