#!/usr/bin/env bash
# Create ./.venv (if missing) and install what is missing: the pinned stack of
# requirements/ and mmris itself in editable mode. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "[mmris] creating .venv"
    "$PY" -m venv .venv
fi
stamp=.venv/.mmris-reqs
want=$(cat requirements/runtime.txt requirements/tests.txt setup.py | sha1sum | cut -c1-40)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "[mmris] installing requirements (first run: ~2 minutes)"
    .venv/bin/python -m pip install -q -r requirements/runtime.txt -r requirements/tests.txt
    .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
    echo "$want" > "$stamp"
fi
