# Sourced by the other scripts: makes sure the Python environment holding libtorch exists, then
# exports what the tch build needs. Idempotent; the first run downloads the torch wheel (~4.7 GB
# installed, with its CUDA libraries).
set -euo pipefail
export ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
TORCH_VERSION=2.11.0

if ! "$VENV/bin/python" - "$TORCH_VERSION" >/dev/null 2>&1 <<'PY'
import sys, torch, safetensors, yaml, numpy
sys.exit(0 if torch.__version__.split("+")[0] == sys.argv[1] else 1)
PY
then
  echo "setting up $VENV with torch==$TORCH_VERSION (one time)..." >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/requirements.txt"
fi

# torch-sys finds libtorch through this interpreter; build.rs bakes its lib directory into the
# binaries' rpath, so nothing is needed at run time.
export LIBTORCH_USE_PYTORCH=1
export PATH="$VENV/bin:$PATH"

# The course corpus: use the shared copy when there is one (else the program downloads it).
if [ -z "${GPTBUILD_DATA:-}" ] && [ -f "$ROOT/../shared/data/tinyshakespeare.txt" ]; then
  export GPTBUILD_DATA="$ROOT/../shared/data/tinyshakespeare.txt"
fi
