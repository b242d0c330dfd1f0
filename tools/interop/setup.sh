#!/usr/bin/env bash
# Create (idempotently) the Python virtualenvs of the cookiestore interop harness.
#
#   tools/interop/setup.sh [all|main|z26|crossbar-today]      (default: all)
#
# main: ${COOKIESTORE_INTEROP_VENV:-<repo>/target/interop-venv}      <- requirements.txt
#       (cfxdb 25.12.2, zlmdb 25.12.3, crossbar 25.12.1)
# z26:  <main venv path>-z26                                           <- requirements-zlmdb26.txt
#       (zlmdb 26.x, only for make_format3.py)
# crossbar-today: <main venv path>-crossbar-today    <- requirements-crossbar-today.txt
#       (crossbar 25.12.1 as installed today: zlmdb 26.10.1, cfxdb 26.6.1; LMDB format 3)
#
# Each venv gets a marker file <venv>/.ready holding the sha256 of its requirements file
# and of the Python version; when the marker matches, nothing is done (a second run is instant).
# Environment: COOKIESTORE_INTEROP_VENV (venv path), PYTHON (interpreter, default python3).
set -u -o pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/../.." && pwd)"
VENV="${COOKIESTORE_INTEROP_VENV:-$REPO/target/interop-venv}"
VENV_Z26="${VENV}-z26"
VENV_TODAY="${VENV}-crossbar-today"
PYTHON="${PYTHON:-python3}"
WHAT="${1:-all}"

die() {
    echo "setup.sh: ERROR: $*" >&2
    exit 1
}

case "$WHAT" in
    all | main | z26 | crossbar-today) ;;
    -h | --help)
        sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument '$WHAT' (expected all, main, z26 or crossbar-today)" ;;
esac

command -v "$PYTHON" >/dev/null 2>&1 || die "python interpreter '$PYTHON' not found"
PYVER="$("$PYTHON" -c 'import sys; print(sys.version.split()[0])')" || die "cannot run $PYTHON"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# setup_venv VENV_DIR REQUIREMENTS_FILE LABEL
setup_venv() {
    local venv="$1" req="$2" label="$3"
    local t0 hash marker log
    t0="$(now)"
    [ -f "$req" ] || die "requirements file $req not found"
    hash="$( (cat "$req"; echo "python=$PYVER") | sha256sum | cut -d' ' -f1)"
    marker="$venv/.ready"

    if [ -f "$marker" ] && [ "$(cat "$marker")" = "$hash" ] && "$venv/bin/python" -c 'pass' >/dev/null 2>&1; then
        echo "setup.sh: $label venv up to date at $venv (checked in $(elapsed "$t0")s)"
        return 0
    fi

    if [ -e "$venv" ]; then
        echo "setup.sh: $label venv at $venv is missing, stale or incomplete: recreating it"
        rm -rf "$venv" || die "cannot remove stale venv $venv"
    fi
    mkdir -p "$(dirname "$venv")" || die "cannot create $(dirname "$venv")"

    echo "setup.sh: creating $label venv at $venv (python $PYVER, $req)"
    "$PYTHON" -m venv "$venv" || die "'$PYTHON -m venv $venv' failed (is the venv/ensurepip module installed?)"

    log="$venv/pip-install.log"
    # Once more after a failure: a CI run once saw pip fail with no message in the
    # middle of its downloads, and the same install pass a minute later.
    attempt=1
    until "$venv/bin/python" -m pip install --disable-pip-version-check -r "$req" >"$log" 2>&1; do
        status=$?
        echo "---- last lines of $log (attempt $attempt, exit status $status) ----" >&2
        tail -n 30 "$log" >&2
        if [ "$attempt" -ge 2 ]; then
            die "pip install -r $req into $venv failed twice (exit status $status) after $(elapsed "$t0")s (full log: $log)"
        fi
        echo "setup.sh: pip install failed (exit status $status): trying once more" >&2
        attempt=$((attempt + 1))
    done
    "$venv/bin/python" -m pip freeze >"$venv/pip-freeze.txt" 2>/dev/null || true
    echo "$hash" >"$marker" || die "cannot write $marker"
    echo "setup.sh: $label venv ready at $venv (took $(elapsed "$t0")s)"
}

T_ALL="$(now)"

# Serialize concurrent runs on the same venv path.
mkdir -p "$(dirname "$VENV")" || die "cannot create $(dirname "$VENV")"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$VENV.setup-lock" || die "cannot open lock file $VENV.setup-lock"
    flock 9 || die "cannot lock $VENV.setup-lock"
fi

if [ "$WHAT" = all ] || [ "$WHAT" = main ]; then
    setup_venv "$VENV" "$SCRIPT_DIR/requirements.txt" "main (cfxdb/zlmdb 25.12, crossbar)"
fi
if [ "$WHAT" = all ] || [ "$WHAT" = z26 ]; then
    setup_venv "$VENV_Z26" "$SCRIPT_DIR/requirements-zlmdb26.txt" "zlmdb-26"
fi
if [ "$WHAT" = all ] || [ "$WHAT" = crossbar-today ]; then
    setup_venv "$VENV_TODAY" "$SCRIPT_DIR/requirements-crossbar-today.txt" "crossbar-today (crossbar 25.12.1, zlmdb/cfxdb 26)"
fi

echo "setup.sh: done in $(elapsed "$T_ALL")s"
