#!/usr/bin/env bash
# Creates the project's virtual environment with libtorch (PyPI `torch==2.13.0`, the version tch 0.26
# binds) and prints nothing else of note when it is already there. Idempotent: a stamp file records
# what was installed, so a second run costs well under a second.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VICUNA_VENV:-$root/.venv}"
torch_version="2.13.0"
stamp="$venv/.vicuna-setup-torch-$torch_version"

if [ -f "$stamp" ]; then
  exit 0
fi
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating virtual environment $venv" >&2
  "$python" -m venv "$venv"
fi
echo "setup: installing torch==$torch_version into $venv (about 70 s and 4.7 GB the first time)" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "torch==$torch_version"
"$venv/bin/python" -W ignore -c "import torch; assert torch.__version__.startswith('$torch_version'), torch.__version__"
touch "$stamp"
