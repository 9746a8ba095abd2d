# Sourced by the launch scripts: sets PYTHON to the interpreter to use.
# 1. $PYTHON when set; 2. the active virtual environment's python;
# 3. the checkout's .venv (made by tools/setup_env.sh); 4. python3.
if [ -z "${PYTHON:-}" ]; then
    _root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    if [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then
        PYTHON="$VIRTUAL_ENV/bin/python"
    elif [ -x "$_root/.venv/bin/python" ]; then
        PYTHON="$_root/.venv/bin/python"
    else
        PYTHON=python3
    fi
    unset _root
fi
