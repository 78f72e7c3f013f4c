#!/usr/bin/env bash
# Installs Debian's libgloo-dev (the declarations of the Gloo engine inside libtorch_cpu, which the c10d
# shim in src/train/dist/ is compiled against) and creates the project's virtual environment with libtorch (PyPI `torch==2.13.0`, the version tch 0.26
# binds) and the pinned Python reference the model tests compare against (`transformers==5.23.0` and the
# packages it saves and loads checkpoints with) and the `gguf` package (the reference of `model import`), plus SkyPilot in an environment of its own
# (`.venv/skypilot`, for checking the task files in scripts/sky/), FastChat's delta scripts in two
# more (`.venv/fastchat`, `.venv/fastchat-v0`, the reference of `vicuna model delta`), and the GGUF export references (`gguf` and llama.cpp
# through `llama-cpp-python`, built portable from source), and prints nothing else of note when
# they are already there. Idempotent: one stamp file per step records what was installed, so an environment made before
# the reference step was added only gets that delta, and a second run costs well under a second.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VICUNA_VENV:-$root/.venv}"
torch_version="2.13.0"
stamp="$venv/.vicuna-setup-torch-$torch_version"
# The reference (scripts/fixtures/llama_reference.py): transformers and the dependencies that touch the
# numbers or the checkpoint format, pinned; pip resolves the rest of transformers' requirements.
reference_pkgs=(transformers==5.23.0 numpy==2.4.6 safetensors==0.8.0 huggingface_hub==2.4.0 tokenizers==0.23.3)
reference_stamp="$venv/.vicuna-setup-reference"
# The CUDA headers the shim's NCCL path is compiled against (libtorch's wheel ships the libraries only).
cuda_pkgs=("nvidia-cuda-crt==13.0.88.*" "cuda-toolkit[cccl]==13.0.3")
cuda_stamp="$venv/.vicuna-setup-cuda-headers"
# SkyPilot, whose own parser checks the task files in scripts/sky/ (tests/sky_tasks.rs). It gets a
# virtual environment of its own inside this one: skypilot 0.14.1 needs click<8.2 and
# huggingface_hub 2.4.0 needs click>=8.4.2, so in one environment pip would break one of them.
sky_pkgs=(skypilot==0.14.1)
sky_venv="$venv/skypilot"
sky_stamp="$venv/.vicuna-setup-skypilot"
# The official OpenAI Python client, which tests/serve_openai.rs chats with `vicuna serve` through; in
# an environment of its own (.venv/openai) so its httpx/pydantic pins never meet transformers'.
openai_pkgs=(openai==1.109.1)
openai_venv="$venv/openai"
openai_stamp="$venv/.vicuna-setup-openai"
# The `gguf` package (llama.cpp's own GGUF reader, writer and dequantizer), the reference of
# `vicuna model import` (scripts/fixtures/gguf_reference.py); it needs nothing beyond numpy and pyyaml.
gguf_pkgs=(gguf==0.19.0)
gguf_stamp="$venv/.vicuna-setup-gguf"
# FastChat's delta scripts, the reference of `vicuna model delta` (scripts/fixtures/fastchat_delta.py):
# fschat 0.2.36 (apply_delta/make_delta as they are now) and 0.1.10 (the v0 scripts that grew the
# vocabulary by a pad token), each in an environment of its own inside this one, since both are the
# package `fastchat`. Each borrows torch, transformers and the rest from this environment through a
# .pth file and adds only fschat, accelerate (without their dependencies) and what fastchat.model
# imports that nothing pinned here brings (psutil, requests), not fschat's serving dependencies:
# its markdown2[all] pulls wavedrom, whose sdist no longer builds, and nothing here serves. So
# `pip check` stays clean in this environment, not in those two.
fastchat_pkgs=(fschat==0.2.36 fschat==0.1.10 accelerate==1.15.0 psutil==7.2.2 requests==2.34.2)
fastchat_stamp="$venv/.vicuna-setup-fastchat"
# The references the GGUF export is checked against (tests/gguf_export.rs): the `gguf` package's reader
# and quantizers, and llama.cpp itself through llama-cpp-python, compiled from source (about 3.5 minutes
# on 2 cores). The build is portable: llama.cpp's default native build segfaults at the first
# evaluation on CPUs that advertise AMX (DESIGN.md, "Verified building blocks").
gguf_export_pkgs=(gguf==0.19.0 llama-cpp-python==0.3.36)
gguf_export_cmake="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
gguf_export_stamp="$venv/.vicuna-setup-gguf-export"

if [ ! -f /usr/include/gloo/config.h ]; then
  echo "setup: installing Debian's libgloo-dev (Gloo's headers, for the c10d shim)" >&2
  sudo_cmd=""
  if [ "$(id -u)" != 0 ]; then sudo_cmd="sudo"; fi
  if ! $sudo_cmd apt-get install -y --no-install-recommends libgloo-dev >/dev/null 2>&1; then
    $sudo_cmd apt-get update >/dev/null
    $sudo_cmd apt-get install -y --no-install-recommends libgloo-dev >/dev/null
  fi
fi

if [ -f "$stamp" ] && [ -f "$reference_stamp" ] && [ "$(cat "$reference_stamp")" = "${reference_pkgs[*]}" ] \
  && [ -f "$cuda_stamp" ] && [ "$(cat "$cuda_stamp")" = "${cuda_pkgs[*]}" ] \
  && [ -f "$sky_stamp" ] && [ "$(cat "$sky_stamp")" = "${sky_pkgs[*]}" ] \
  && [ -f "$openai_stamp" ] && [ "$(cat "$openai_stamp")" = "${openai_pkgs[*]}" ] \
  && [ -f "$gguf_stamp" ] && [ "$(cat "$gguf_stamp")" = "${gguf_pkgs[*]}" ] \
  && [ -f "$fastchat_stamp" ] && [ "$(cat "$fastchat_stamp")" = "${fastchat_pkgs[*]}" ] \
  && [ -f "$gguf_export_stamp" ] && [ "$(cat "$gguf_export_stamp")" = "${gguf_export_pkgs[*]} $gguf_export_cmake" ]; then
  exit 0
fi
python="${PYTHON:-python3}"
if [ ! -f "$stamp" ]; then
  if [ ! -x "$venv/bin/python" ]; then
    echo "setup: creating virtual environment $venv" >&2
    "$python" -m venv "$venv"
  fi
  echo "setup: installing torch==$torch_version into $venv (about 70 s and 4.7 GB the first time)" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "torch==$torch_version"
  "$venv/bin/python" -W ignore -c "import torch; assert torch.__version__.startswith('$torch_version'), torch.__version__"
  touch "$stamp"
fi
if [ ! -f "$reference_stamp" ] || [ "$(cat "$reference_stamp")" != "${reference_pkgs[*]}" ]; then
  echo "setup: installing ${reference_pkgs[*]} into $venv (about 20 s the first time)" >&2
  rm -f "$reference_stamp"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${reference_pkgs[@]}"
  "$venv/bin/python" -W ignore -c "import torch, transformers, numpy, safetensors
assert transformers.__version__ == '5.23.0', transformers.__version__
assert torch.__version__.startswith('$torch_version'), torch.__version__"
  echo "${reference_pkgs[*]}" > "$reference_stamp"
fi
if [ ! -f "$cuda_stamp" ] || [ "$(cat "$cuda_stamp")" != "${cuda_pkgs[*]}" ]; then
  echo "setup: installing the CUDA headers for the NCCL path (${cuda_pkgs[*]})" >&2
  rm -f "$cuda_stamp"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${cuda_pkgs[@]}"
  echo "${cuda_pkgs[*]}" > "$cuda_stamp"
fi
if [ ! -f "$sky_stamp" ] || [ "$(cat "$sky_stamp")" != "${sky_pkgs[*]}" ]; then
  echo "setup: installing ${sky_pkgs[*]} into $sky_venv (about 30 s the first time)" >&2
  rm -f "$sky_stamp"
  if [ ! -x "$sky_venv/bin/python" ]; then
    "$python" -m venv "$sky_venv"
  fi
  "$sky_venv/bin/python" -m pip install --quiet --disable-pip-version-check "${sky_pkgs[@]}"
  "$sky_venv/bin/python" -W ignore -c "import importlib.metadata as m
assert m.version('skypilot') == '0.14.1', m.version('skypilot')"
  echo "${sky_pkgs[*]}" > "$sky_stamp"
fi
if [ ! -f "$gguf_stamp" ] || [ "$(cat "$gguf_stamp")" != "${gguf_pkgs[*]}" ]; then
  echo "setup: installing ${gguf_pkgs[*]} into $venv" >&2
  rm -f "$gguf_stamp"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${gguf_pkgs[@]}"
  "$venv/bin/python" -W ignore -c "import importlib.metadata as m
assert m.version('gguf') == '0.19.0', m.version('gguf')"
  echo "${gguf_pkgs[*]}" > "$gguf_stamp"
fi
if [ ! -f "$fastchat_stamp" ] || [ "$(cat "$fastchat_stamp")" != "${fastchat_pkgs[*]}" ]; then
  echo "setup: installing FastChat's delta scripts (${fastchat_pkgs[*]}) into $venv/fastchat and $venv/fastchat-v0" >&2
  rm -f "$fastchat_stamp"
  site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  for spec in "fastchat ${fastchat_pkgs[0]}" "fastchat-v0 ${fastchat_pkgs[1]}"; do
    read -r name fschat <<<"$spec"
    env_dir="$venv/$name"
    if [ ! -x "$env_dir/bin/python" ]; then
      "$venv/bin/python" -m venv "$env_dir"
    fi
    env_site="$("$env_dir/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    echo "$site" > "$env_site/vicuna-project-venv.pth"
    "$env_dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "$fschat" "${fastchat_pkgs[2]}"
    "$env_dir/bin/python" -m pip install --quiet --disable-pip-version-check "${fastchat_pkgs[@]:3}"
    "$env_dir/bin/python" -W ignore -c "import importlib.metadata as m, fastchat.model.apply_delta, fastchat.model.make_delta
assert m.version('fschat') == '${fschat#fschat==}', m.version('fschat')"
  done
  echo "${fastchat_pkgs[*]}" > "$fastchat_stamp"
fi
if [ ! -f "$gguf_export_stamp" ] || [ "$(cat "$gguf_export_stamp")" != "${gguf_export_pkgs[*]} $gguf_export_cmake" ]; then
  echo "setup: installing ${gguf_export_pkgs[*]} into $venv (llama.cpp builds from source: about 4 minutes the first time)" >&2
  rm -f "$gguf_export_stamp"
  CMAKE_ARGS="$gguf_export_cmake" "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir \
    "${gguf_export_pkgs[@]}"
  "$venv/bin/python" -W ignore -c "import gguf, llama_cpp, importlib.metadata as m
assert m.version('gguf') == '0.19.0', m.version('gguf')"
  echo "${gguf_export_pkgs[*]} $gguf_export_cmake" > "$gguf_export_stamp"
fi
if [ ! -f "$openai_stamp" ] || [ "$(cat "$openai_stamp")" != "${openai_pkgs[*]}" ]; then
  echo "setup: installing ${openai_pkgs[*]} into $openai_venv" >&2
  rm -f "$openai_stamp"
  if [ ! -x "$openai_venv/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$openai_venv"
  fi
  "$openai_venv/bin/python" -m pip install --quiet --disable-pip-version-check "${openai_pkgs[@]}"
  "$openai_venv/bin/python" -W ignore -c "import importlib.metadata as m
assert m.version('openai') == '1.109.1', m.version('openai')"
  echo "${openai_pkgs[*]}" > "$openai_stamp"
fi
