#!/usr/bin/env bash
# The paper setting measured on one GPU, in at most ~8 minutes: scripts/gpu_check/ says what is measured.
#   bash scripts/gpu_check.sh --out DIR              # on a GPU machine: DIR/gpu_check.{json,md,log}
#   bash scripts/gpu_check.sh --dry-run --out DIR    # the same code on the CPU at tiny sizes (CI runs this)
# A GPU machine without the project's pins still needs dvclive and clean-fid for the stages: where they do not
# import, the wheels in .whl/ (bash scripts/gpu_wheels.sh makes them on a machine with a package registry) are
# installed into a temporary folder first, offline.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PYTHON:-python3}"
if ! "$py" -c "import dvclive, cleanfid" 2>/dev/null; then
  if compgen -G "$root/.whl/*.whl" >/dev/null; then
    site="$(mktemp -d)"
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$root"/.whl/*.whl
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
  else
    echo "gpu_check: dvclive or clean-fid does not import and .whl/ holds no wheels; the stage sections will fail" >&2
  fi
fi
export PYTHONPATH="$root:$root/tests${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "$py" -m scripts.gpu_check "$@"
