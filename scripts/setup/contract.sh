#!/usr/bin/env bash
# Installs what the contract suite needs (schemathesis, openapi-python-client), pinned in
# scripts/requirements/contract.txt. Idempotent: does nothing when the pinned versions are installed.
# The suite runs with BARRACK_TEST_PYTHON=1 (docs/testing.md).
set -euo pipefail
cd "$(dirname "$0")/../.."

bash scripts/setup/python-requirements.sh scripts/requirements/contract.txt "contract suite"
for tool in st openapi-python-client; do
  command -v "$tool" >/dev/null || { echo "contract suite: $tool is not on the PATH after installing" >&2; exit 1; }
done
