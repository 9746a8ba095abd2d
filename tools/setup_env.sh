#!/usr/bin/env bash
# Create ./.venv (if missing) and install what is missing: the requirements
# of requirements/ (runtime, tests, deploy) at the exact versions of
# requirements/constraints.txt, and mmris itself in editable mode. Safe to
# run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "[mmris] creating .venv"
    "$PY" -m venv .venv
fi
stamp=.venv/.mmris-reqs
reqs="requirements/runtime.txt requirements/tests.txt requirements/deploy.txt"
# shellcheck disable=SC2086
want=$(cat $reqs requirements/constraints.txt setup.py | sha1sum | cut -c1-40)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "[mmris] installing requirements (first run: ~2 minutes)"
    # shellcheck disable=SC2086
    .venv/bin/python -m pip install -q $(printf -- '-r %s ' $reqs) \
        -c requirements/constraints.txt
    .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
    echo "$want" > "$stamp"
fi
