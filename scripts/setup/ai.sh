#!/usr/bin/env bash
# Installs what the AI suite needs (the official openai client), pinned in
# scripts/requirements/ai.txt. Idempotent: does nothing when the pinned versions are installed.
# The suite runs with BARRACK_TEST_PYTHON=1 (docs/testing.md).
set -euo pipefail
cd "$(dirname "$0")/../.."

bash scripts/setup/python-requirements.sh scripts/requirements/ai.txt "AI suite"
python3 -c 'import openai' || { echo "AI suite: the openai package does not import after installing" >&2; exit 1; }
