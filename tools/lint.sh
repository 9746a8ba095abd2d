#!/usr/bin/env bash
# Lint the code base the OpenMMLab way (settings in setup.cfg): flake8,
# isort, yapf and codespell. Checks only by default (exit status 1 when a
# tool objects); --fix lets isort and yapf rewrite the files.
# Installs requirements/lint.txt (at the versions of
# requirements/constraints.txt) into .venv when a tool is missing.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || PY=${PYTHON:-python3}
fix=0
if [ "${1:-}" = "--fix" ]; then fix=1; shift; fi
if ! "$PY" -c "import flake8, isort, yapf, codespell_lib" 2>/dev/null; then
    echo "[lint] installing requirements/lint.txt"
    "$PY" -m pip install -q -r requirements/lint.txt \
        -c requirements/constraints.txt || exit 2
fi
paths=(mmris configs tools tests setup.py)
rc=0
if [ $fix = 1 ]; then
    "$PY" -m isort "${paths[@]}" || rc=1
    "$PY" -m yapf -r -i -p -e 'mmris/.mim/*' "${paths[@]}" || rc=1
else
    "$PY" -m isort --check-only --diff "${paths[@]}" || rc=1
    changed=$("$PY" -m yapf -r -d -p -e 'mmris/.mim/*' "${paths[@]}" | grep '^+++' \
        | sed 's/^+++ //; s/[[:space:]]*(reformatted)$//')
    if [ -n "$changed" ]; then
        echo "[lint] yapf would reformat $(echo "$changed" | wc -l) file(s):"
        echo "$changed" | sed 's/^/  /'
        rc=1
    fi
fi
"$PY" -m flake8 "${paths[@]}" || rc=1
"$PY" -m codespell_lib "${paths[@]}" README.md CHANGELOG.md CONTRIBUTING.md \
    || rc=1
if [ $rc = 0 ]; then echo "[lint] clean"; else echo "[lint] problems found"; fi
exit $rc
