#!/usr/bin/env bash
# Sets up everything `make run` and `make test` need on a fresh machine, and nothing twice:
# .venv from requirements.lock, the tally package itself (editable), npm tools from package-lock.json.
# A missing prerequisite is named with the command that installs it, never a stack trace.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { # need COMMAND "how to install it"
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "tally: '$1' is missing. Install it first: $2" >&2
    exit 1
  fi
}

PYTHON="${PYTHON:-python3}"
need "$PYTHON" "Python 3.11 or newer (Debian/Ubuntu: apt-get install python3 python3-venv)"
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "tally: Python 3.11 or newer is needed; '$PYTHON' is $("$PYTHON" --version 2>&1). Set PYTHON=/path/to/python3.11." >&2
  exit 1
fi
if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "tally: Python's venv module is missing. Install it first: apt-get install python3-venv" >&2
  exit 1
fi
need node "Node.js 18 or newer (Debian/Ubuntu: apt-get install nodejs npm)"
need npm "npm (Debian/Ubuntu: apt-get install npm)"

if [ ! -x .venv/bin/python ]; then
  echo "tally: creating .venv"
  "$PYTHON" -m venv .venv
fi
if [ ! -f .venv/.installed ] || [ requirements.lock -nt .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  echo "tally: installing Python dependencies from requirements.lock (first time: about 1-2 minutes)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
  touch .venv/.installed
fi
if [ ! -f node_modules/.installed ] || [ package-lock.json -nt node_modules/.installed ]; then
  echo "tally: installing npm tools from package-lock.json (solc, anvil, OpenZeppelin)"
  npm ci --no-audit --no-fund --loglevel=error
  touch node_modules/.installed
fi
