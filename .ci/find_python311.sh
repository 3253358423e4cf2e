# Sourced by demo.sh and .ci/run (bash). `find_python311` prints the path of a Python 3.11
# interpreter (TensorFlow 2.15 and TensorFlow Addons stop at 3.11), or says how to get one
# (docs/python311.md) on stderr and fails. It looks at, in this order: $PYTHON when set (and only
# there), python3.11 on PATH, the 3.11 that uv knows of (`uv python find 3.11`: the ones
# `uv python install 3.11` installs, and others), python3.

_ps_tf_is_python311() {
    [ -n "$1" ] && "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' >/dev/null 2>&1
}

_ps_tf_uv_python311() {
    local found
    # From / so that no project's .venv or .python-version is taken; a virtual environment's
    # interpreter is replaced by the one it was made from.
    if command -v uv >/dev/null 2>&1; then
        found=$(cd / && uv python find 3.11 2>/dev/null) || return 0
    elif command -v python3 >/dev/null 2>&1 && python3 -m uv --version >/dev/null 2>&1; then
        found=$(cd / && python3 -m uv python find 3.11 2>/dev/null) || return 0
    else
        return 0
    fi
    _ps_tf_is_python311 "$found" && "$found" -c \
        'import sys; print(sys.executable if sys.prefix == sys.base_prefix else sys._base_executable)'
}

find_python311() {
    local candidate
    if [ -n "${PYTHON:-}" ]; then
        if _ps_tf_is_python311 "$PYTHON"; then
            echo "$PYTHON"
            return 0
        fi
        echo "ps_tf needs Python 3.11 (TensorFlow 2.15); PYTHON=$PYTHON is not one." \
            "Unset PYTHON to look for one, or see docs/python311.md." >&2
        return 1
    fi
    for candidate in "$(command -v python3.11 || true)" "$(_ps_tf_uv_python311 || true)" \
            "$(command -v python3 || true)"; do
        if _ps_tf_is_python311 "$candidate"; then
            echo "$candidate"
            return 0
        fi
    done
    cat >&2 <<'EOF'
ps_tf needs Python 3.11 (TensorFlow 2.15 and TensorFlow Addons stop at 3.11), and none was found
(python3.11 on PATH, `uv python find 3.11`, python3). Get one, then rerun:
    pip install uv && uv python install 3.11      (or: pipx install uv; then the same)
or your distribution's python3.11 packages (Ubuntu: the deadsnakes PPA), or pyenv; or point
PYTHON=/path/to/python3.11 at one. Step by step: docs/python311.md
EOF
    return 1
}
