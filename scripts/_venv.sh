# Shared by scripts/run and scripts/test (sourced, not run): make .venv and install into it.
# Usage: ensure_venv EXTRAS   (EXTRAS is "" for the app alone, "test" for the test tools too)

MIN_PYTHON="3.11"

find_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3 python3.13 python3.12 python3.11; do
        [ -n "$candidate" ] || continue
        command -v "$candidate" >/dev/null 2>&1 || continue
        if "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

ensure_venv() {
    local extras="$1" python spec stamp wanted
    if [ ! -x .venv/bin/python ]; then
        if ! python="$(find_python)"; then
            echo "error: Python ${MIN_PYTHON} or newer is needed (found: $(python3 --version 2>&1 || echo none))." >&2
            echo "       Install it, or point PYTHON=/path/to/python3.11 at one." >&2
            exit 1
        fi
        echo "creating .venv with $("$python" --version 2>&1)…" >&2
        if ! "$python" -m venv .venv; then
            echo "error: '$python -m venv' failed; on Debian/Ubuntu: apt-get install python3-venv" >&2
            exit 1
        fi
    fi
    spec="."
    [ -n "$extras" ] && spec=".[${extras}]"
    # Reinstall only when pyproject.toml changed since the last install with these extras.
    stamp=".venv/.installed${extras:+-$extras}"
    wanted="$(cksum < pyproject.toml)"
    # An install with the test extras includes the plain one.
    if [ -z "$extras" ] && [ -f .venv/.installed-test ] \
        && [ "$(cat .venv/.installed-test)" = "$wanted" ]; then
        return 0
    fi
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
        echo "installing the project into .venv ($spec)…" >&2
        .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec"
        echo "$wanted" > "$stamp"
    fi
}
