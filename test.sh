#!/usr/bin/env bash
# Set-up and the whole test suite on a fresh machine (Python 3.11 + pip; npm for the real visdom server test).
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --disable-pip-version-check -r requirements.txt
bash .ci/install_visdom.sh  # optional dashboard: client + offline server assets (tests skip without it)
python -m pytest -q "$@"
