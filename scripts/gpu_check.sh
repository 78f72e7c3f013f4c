#!/usr/bin/env bash
# The GPU acceptance check, for a machine with an NVIDIA GPU (a few minutes): the CUDA path cannot
# be tested on the CPU development machines, so this script exercises it end to end.
#   0. prints the GPUs (nvidia-smi), and libtorch's view of CUDA: the venv's torch (version,
#      CUDA, NCCL, devices, whether SDPA's flash kernel runs for the model's head size in bf16)
#      and `vicuna env`; builds with `make build` (a no-op when up to date);
#   1. `vicuna train --device cuda --dtype bf16` (bf16 weights, fp32 masters) on the 8x512 bench
#      model (`model init --preset small`, Llama-2 vocabulary) for a few steps: exit 0, every
#      step logged, finite loss that falls; then the mixed-precision policy (the trainer's module
#      doc, tested on CPU in tests/train_bf16.rs) on the GPU: `--dtype auto` must choose bf16 by the
#      compute capability, and bf16 against fp32 tokens/s with torch's bf16 and fp32 matmul peaks;
#   2. with 2+ GPUs, `--nproc-per-node 2 --device cuda` with `--shard none` and `--shard full`
#      (NCCL): the same checks, bytes handed to collectives > 0, and a first-step loss within 1%
#      of the 1-GPU run (same samples, same weights);
#   3. preemption: a run with --save-interval 1 gets SIGTERM after a few steps (it must save and
#      exit 0), `--resume auto` finishes it, and its final weights must equal an uninterrupted
#      run's (compared with the venv's python and safetensors). Bit-identical is required unless
#      two uninterrupted runs differ too (non-deterministic GPU kernels); then the resumed run may
#      differ by at most twice as much as they do.
# Each run prints tokens/s (median after 2 warm-up steps, from metrics.jsonl) and the peak GPU
# memory of each GPU it used (nvidia-smi's memory.used sampled every 100 ms, minus its value
# before the run; vicuna's own metrics report host memory only). A line per check says PASS or
# FAIL. Exit status: 0 when every check passed, 1 when one failed, 2 when there is no GPU.
#   scripts/gpu_check.sh [WORK_DIR]      (default out/gpu_check; data: ../shared/data's ShareGPT
#                                         sample when present, else examples/)
# Knobs (environment): STEPS (default 10), MICRO (micro-batch, default 8), LENGTH (context,
# default 1024).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$root/out/gpu_check}
shared=${SHARED:-$root/../shared}
steps=${STEPS:-10}
micro=${MICRO:-8}
length=${LENGTH:-1024}
vicuna=$root/target/release/vicuna
python=$root/.venv/bin/python
failures=0

if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "gpu_check: no NVIDIA GPU here (nvidia-smi is not installed); run this on a machine with a CUDA GPU" >&2
  exit 2
fi
if ! gpus=$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null) || [ -z "$gpus" ]; then
  echo "gpu_check: nvidia-smi finds no GPU (no device, or the driver is not loaded); run this on a machine with a CUDA GPU" >&2
  exit 2
fi
ngpu=$(echo "$gpus" | wc -l)

verdict() {  # verdict NAME OK [DETAIL]
  if [ "$2" = 1 ]; then
    echo "PASS  $1${3:+: $3}"
  else
    echo "FAIL  $1${3:+: $3}"
    failures=$((failures + 1))
  fi
}

echo "== GPUs"
nvidia-smi --query-gpu=index,name,compute_cap,memory.total,driver_version --format=csv
echo
echo "== build (make build)"
mkdir -p "$work"
if ! make -C "$root" --no-print-directory build >"$work/build.log" 2>&1; then
  tail -30 "$work/build.log"
  verdict "build" 0 "make build failed (log: $work/build.log)"
  exit 1
fi
if ! make -C "$root" --no-print-directory tokenizers >"$work/tokenizers.log" 2>&1; then
  tail -30 "$work/tokenizers.log"
  verdict "tokenizers" 0 "make tokenizers failed (log: $work/tokenizers.log)"
  exit 1
fi
echo "built $vicuna"
echo
echo "== libtorch and CUDA"
"$python" - <<'PY'
import torch
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
      f"available {torch.cuda.is_available()}, devices {torch.cuda.device_count()}")
if torch.cuda.is_available():
    print(f"NCCL {'.'.join(map(str, torch.cuda.nccl.version()))}")
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        print(f"cuda:{i} {p.name}, sm{p.major}{p.minor}, {p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs, "
              f"bf16 {torch.cuda.is_bf16_supported()}")
    # The model's attention: SDPA, causal, bf16, head size 64 (the small preset). Flash only:
    from torch.nn.attention import SDPBackend, sdpa_kernel
    q = torch.randn(2, 8, 512, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    try:
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            torch.nn.functional.scaled_dot_product_attention(q, q, q, is_causal=True).sum().backward()
        print("SDPA flash attention kernel: runs (bf16, causal, head 64, forward and backward)")
    except RuntimeError as e:
        print(f"SDPA flash attention kernel: not available here ({str(e).splitlines()[0]}); SDPA falls back to another kernel")
PY
"$vicuna" env
if ! "$vicuna" env --json | grep -q '"cuda_available": true'; then
  verdict "libtorch sees the GPU" 0 "vicuna env reports no CUDA device although nvidia-smi lists $ngpu"
  exit 1
fi

echo
echo "== data and model"
tok=$root/.cache/tokenizers/llama2
model=$work/small-llama2
if [ ! -f "$model/config.json" ]; then
  "$vicuna" model init --preset small --tokenizer "$tok" -o "$model" --seed 0 || exit 1
fi
raw=$shared/data/sharegpt_raw_sample.json
[ -f "$raw" ] || raw=$root/examples/sharegpt_raw_example.json
data=$work/encoded_$length.jsonl
if [ ! -f "$data" ]; then
  { "$vicuna" prep clean "$raw" -o "$work/clean.json" \
    && "$vicuna" prep encode "$work/clean.json" --tokenizer "$tok" --template vicuna_v1.1 \
      --max-length "$length" -o "$data"; } >/dev/null || exit 1
fi
echo "model $model, data $data ($(wc -l <"$data") samples from $raw)"

# Sets ARGS to the training arguments every run shares: ARGS_FOR OUT STEPS [EXTRA FLAGS...].
ARGS=()
args_for() {
  local out=$1 n=$2
  shift 2
  ARGS=(--model "$model" --data "$data" --output-dir "$out" --device cuda --dtype "${DTYPE:-bf16}"
    --max-length "$length" --micro-batch-size "$micro" --gradient-accumulation 2 --max-steps "$n"
    --learning-rate 1e-4 --warmup-ratio 0 --lr-schedule constant --seed 0 --keep-checkpoints 2
    --dist-timeout 120 "$@")
}

# Samples every GPU's used memory every 100 ms into $1 until stop_gpu_sampler.
sampler_pid=
start_gpu_sampler() {
  nvidia-smi --query-gpu=index,memory.used --format=csv,noheader,nounits >"$1.base"
  nvidia-smi --query-gpu=index,memory.used --format=csv,noheader,nounits -lms 100 >"$1" 2>/dev/null &
  sampler_pid=$!
}
stop_gpu_sampler() {
  kill "$sampler_pid" 2>/dev/null
  wait "$sampler_pid" 2>/dev/null
  sampler_pid=
}

# Checks one finished run and prints its speed and memory; sets $first_loss. report NAME DIR RC EXPECT_COMM
first_loss=
report() {
  local name=$1 dir=$2 rc=$3 comm=$4 summary
  if [ "$rc" != 0 ]; then
    tail -20 "$dir.log"
    verdict "$name" 0 "exit status $rc (log: $dir.log)"
    return
  fi
  summary=$("$python" - "$dir" "$steps" "$comm" <<'PY'
import json, math, statistics, sys
out, steps, comm = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
rows = [json.loads(l) for l in open(f"{out}/metrics.jsonl") if '"loss"' in l]
base = {int(i): float(m) for i, m in (l.split(",") for l in open(f"{out}/gpu.csv.base"))}
peak = {}
for line in open(f"{out}/gpu.csv"):
    try:
        i, m = (x.strip() for x in line.split(","))
        peak[int(i)] = max(peak.get(int(i), 0.0), float(m) - base.get(int(i), 0.0))
    except ValueError:
        pass
used = {i: m for i, m in peak.items() if m > 64}
problems = []
if len(rows) != steps:
    problems.append(f"{len(rows)} steps logged, {steps} expected")
if not all(math.isfinite(r["loss"]) for r in rows):
    problems.append("a non-finite loss")
elif rows and not rows[-1]["loss"] < rows[0]["loss"]:
    problems.append(f"the loss did not fall ({rows[0]['loss']:.4f} -> {rows[-1]['loss']:.4f})")
if comm and not all(r["comm_bytes"] > 0 for r in rows):
    problems.append("a step with no collective")
tps = statistics.median(r["tokens_per_second"] for r in rows[2:] or rows) if rows else 0.0
memory = ", ".join(f"cuda:{i} {m / 1024:.2f} GiB" for i, m in sorted(used.items())) or "none seen"
print(rows[0]["loss"] if rows else "nan")
print(f"{tps:.0f} tokens/s, loss {rows[0]['loss']:.4f} -> {rows[-1]['loss']:.4f}, peak GPU memory {memory}"
      if rows else "no step logged")
print("; ".join(problems))
PY
  ) || { verdict "$name" 0 "cannot read $dir/metrics.jsonl"; return; }
  first_loss=$(sed -n 1p <<<"$summary")
  local problems
  problems=$(sed -n 3p <<<"$summary")
  if [ -n "$problems" ]; then
    verdict "$name" 0 "$(sed -n 2p <<<"$summary"); $problems"
  else
    verdict "$name" 1 "$(sed -n 2p <<<"$summary")"
  fi
}

# run NAME DIR COMM [FLAGS...]: one training run of $steps steps (COMM=1: it must use collectives),
# timed out after 15 minutes.
run() {
  local name=$1 dir=$2 comm=$3 rc
  shift 3
  rm -rf "$dir" "$dir.log"
  mkdir -p "$dir"
  args_for "$dir" "$steps" "$@"
  start_gpu_sampler "$dir/gpu.csv"
  timeout 900 "$vicuna" train "${ARGS[@]}" >"$dir.log" 2>&1
  rc=$?
  stop_gpu_sampler
  report "$name" "$dir" "$rc" "$comm"
}

echo
echo "== 1. one GPU, bf16"
run "1 GPU bf16" "$work/one" 0 --save-interval 100000
one_loss=$first_loss

echo
echo "== 1b. the mixed-precision policy on the GPU: --dtype auto picks bf16; bf16 against fp32"
DTYPE=auto run "1 GPU --dtype auto" "$work/auto" 0 --save-interval 100000
if grep -q "^dtype bf16: auto: the CUDA device has compute capability" "$work/auto.log"; then
  verdict "--dtype auto on this GPU" 1 "$(grep -m1 '^dtype ' "$work/auto.log")"
else
  verdict "--dtype auto on this GPU" 0 "expected bf16 by compute capability; the run said: $(grep -m1 '^dtype ' "$work/auto.log")"
fi
DTYPE=fp32 run "1 GPU fp32" "$work/fp32" 0 --save-interval 100000
"$python" - "$work/one" "$work/fp32" <<'PY'
import json, statistics, sys
import torch
def tps(out):
    rows = [json.loads(l) for l in open(f"{out}/metrics.jsonl") if '"loss"' in l]
    return statistics.median(r["tokens_per_second"] for r in rows[2:] or rows)
def peak(dtype, n=8192):
    a, b = (torch.randn(n, n, device="cuda", dtype=dtype) for _ in range(2))
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(10):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record(); a @ b; end.record(); torch.cuda.synchronize()
        best = min(best, start.elapsed_time(end) / 1e3)
    return 2 * n**3 / best / 1e12
bf16, fp32 = tps(sys.argv[1]), tps(sys.argv[2])
print(f"bf16 {bf16:.0f} tokens/s, fp32 {fp32:.0f} tokens/s: {bf16 / fp32:.2f}x; matmul peak (torch, n=8192): "
      f"bf16 {peak(torch.bfloat16):.0f} TFLOP/s, fp32 {peak(torch.float32):.0f} TFLOP/s (TF32 off)")
PY

if [ "$ngpu" -ge 2 ]; then
  for mode in none full; do
    echo
    echo "== 2. two GPUs, --shard $mode (NCCL)"
    run "2 GPUs --shard $mode" "$work/two-$mode" 1 --save-interval 100000 --nproc-per-node 2 --shard "$mode" \
      --master-port $((29500 + RANDOM % 1000))
    if [ -n "$first_loss" ] && [ -n "$one_loss" ]; then
      close=$("$python" -c "import sys; a, b = map(float, sys.argv[1:]); print(int(abs(a - b) <= 0.01 * abs(b)))" \
        "$first_loss" "$one_loss")
      verdict "2 GPUs --shard $mode: step-1 loss matches 1 GPU" "$close" "$first_loss vs $one_loss"
    fi
  done
else
  echo
  echo "== 2. two GPUs: skipped (this machine has $ngpu GPU)"
fi

echo
echo "== 3. SIGTERM, then --resume auto, against an uninterrupted run"
resume_steps=$((steps < 6 ? 6 : steps))
# compare A B: prints "identical" or the largest absolute difference over all tensors.
compare() {
  "$python" - "$1" "$2" <<'PY'
import glob, sys
from safetensors.torch import load_file
def load(d):
    out = {}
    for f in sorted(glob.glob(f"{d}/*.safetensors")):
        out.update(load_file(f))
    return out
a, b = load(sys.argv[1]), load(sys.argv[2])
if not a or a.keys() != b.keys() or any(a[k].shape != b[k].shape or a[k].dtype != b[k].dtype for k in a):
    print("mismatch: different tensor names, shapes or dtypes")
elif all((a[k] == b[k]).all() for k in a):
    print("identical")
else:
    print(max((a[k].float() - b[k].float()).abs().max().item() for k in a))
PY
}
# train DIR [FLAGS...]: a $resume_steps-step run saving every step, timed out after 15 minutes.
train() {
  local dir=$1
  shift
  args_for "$dir" "$resume_steps" --save-interval 1 "$@"
  timeout 900 "$vicuna" train "${ARGS[@]}"
}
ref=$work/uninterrupted
rm -rf "$ref" "$ref.log"
train "$ref" >"$ref.log" 2>&1
ref_rc=$?
cut=$work/interrupted
rm -rf "$cut" "$cut.log" "$cut.resume.log"
args_for "$cut" "$resume_steps" --save-interval 1
"$vicuna" train "${ARGS[@]}" >"$cut.log" 2>&1 &
pid=$!
logged() {  # steps the interrupted run has logged
  local n
  n=$(grep -c '"loss"' "$cut/metrics.jsonl" 2>/dev/null)
  echo "${n:-0}"
}
for _ in $(seq 1 6000); do  # until 3 steps are logged (at most 10 minutes)
  [ "$(logged)" -ge 3 ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
kill -TERM "$pid" 2>/dev/null
for _ in $(seq 1 1200); do  # it must save and exit well within a spot warning (120 s)
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then
  kill -KILL "$pid"
  echo "the interrupted run was still running 120 s after SIGTERM" >>"$cut.log"
fi
wait "$pid"
cut_rc=$?
stopped_at=$(logged)
signalled=$(grep -c "signal 15" "$cut.log")
train "$cut" --resume auto >"$cut.resume.log" 2>&1
resume_rc=$?
name="SIGTERM after step $stopped_at of $resume_steps, --resume auto"
if [ "$ref_rc" != 0 ] || [ "$cut_rc" != 0 ] || [ "$resume_rc" != 0 ] || [ "$signalled" = 0 ]; then
  tail -5 "$ref.log" "$cut.log" "$cut.resume.log"
  verdict "$name" 0 "exit status: uninterrupted $ref_rc, interrupted $cut_rc (0 expected after its save), resumed $resume_rc; interrupted run acknowledged SIGTERM: $signalled (0: it never saw it, or finished first)"
else
  grep -h "signal 15\|resuming from" "$cut.log" "$cut.resume.log"
  diff=$(compare "$ref/final" "$cut/final")
  case $diff in
    identical) verdict "$name" 1 "final weights bit-identical to the uninterrupted run" ;;
    mismatch*) verdict "$name" 0 "$diff" ;;
    *)
      # Not bit-identical: is the GPU itself deterministic here? A second uninterrupted run tells.
      ref2=$work/uninterrupted2
      rm -rf "$ref2"
      train "$ref2" >"$ref2.log" 2>&1
      noise=$(compare "$ref/final" "$ref2/final")
      ok=$("$python" -c 'import sys
d, n = sys.argv[1:]
try:
    print(int(float(d) <= 2 * float(n)))
except ValueError:  # n is "identical" (deterministic GPU: any difference fails) or a mismatch
    print(0)' "$diff" "$noise")
      verdict "$name" "$ok" "final weights differ from the uninterrupted run by up to $diff; two uninterrupted runs differ by: $noise"
      ;;
  esac
fi

echo
if [ "$failures" -gt 0 ]; then
  echo "gpu_check: $failures check(s) FAILED"
  exit 1
fi
echo "gpu_check: every check passed"
