# Shared by scripts/run and scripts/test: create or refresh the virtual environment.
# Sourced, not executed.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$REPO_ROOT/.venv}"
PYTHON_BIN="${PYTHON_BIN:-python3.11}"

ensure_venv() {
    if ! command -v "$PYTHON_BIN" >/dev/null 2>&1; then
        PYTHON_BIN=python3
    fi
    if ! "$PYTHON_BIN" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "error: Python 3.11 or newer is needed ($PYTHON_BIN is $("$PYTHON_BIN" --version 2>&1))." >&2
        echo "On Debian/Ubuntu: sudo apt-get install python3.11 python3.11-venv" >&2
        exit 1
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        echo "Creating the virtual environment in $VENV ..."
        if ! "$PYTHON_BIN" -m venv "$VENV"; then
            echo "error: could not create a virtual environment. On Debian/Ubuntu: sudo apt-get install python3-venv" >&2
            exit 1
        fi
    fi
    # Reinstall only when the declared dependencies change.
    local stamp="$VENV/.installed-pyproject"
    if ! cmp -s "$REPO_ROOT/pyproject.toml" "$stamp"; then
        echo "Installing dependencies (first run takes a few minutes) ..."
        "$VENV/bin/python" -m pip install --quiet --upgrade pip
        # Everything: the bot's, the workers' and the study's dependencies, and the test tools.
        "$VENV/bin/python" -m pip install --quiet -e "$REPO_ROOT[bot,worker,study,dev]"
        cp "$REPO_ROOT/pyproject.toml" "$stamp"
    fi
}

# Debian's redis-server, installed when absent (the local service and the tests need one).
ensure_redis_server() {
    if ! command -v redis-server >/dev/null 2>&1; then
        echo "Installing redis-server (Debian package) ..."
        local sudo=""
        [ "$(id -u)" -ne 0 ] && sudo="sudo"
        $sudo apt-get update -qq && $sudo apt-get install -y -qq redis-server >/dev/null
    fi
}
