# Shared set-up of the benchmark scripts (sourced, not run): paths, the large ShareGPT corpus
# built by ../shared/tools/make_bench_corpus.sh, FastChat in its own virtual environment, and the
# release binary. After sourcing: $root, $shared, $work, $corpus, $ref (FastChat's venv), $vicuna.
#   usage in a script:  source "$(dirname "$0")/common.sh" "${1:-}"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
shared=${SHARED:-$root/../shared}
work=${1:-$root/out/bench}
[ -n "$work" ] || work=$root/out/bench
mkdir -p "$work"
corpus=$work/corpus
ref=$work/fastchat-venv
vicuna=$root/target/release/vicuna

# The large raw corpus (17.7k conversations, about 158 MB) and its markdown ground truth.
ensure_corpus() {
  if [ ! -f "$corpus/sharegpt_raw.json" ]; then
    bash "$shared/tools/make_bench_corpus.sh" "$corpus" 1
  fi
}

# FastChat's data scripts (PyPI fschat) in their own environment, without its serving dependencies.
ensure_fastchat() {
  if [ ! -x "$ref/bin/python" ]; then
    python3 -m venv "$ref"
    "$ref/bin/pip" install -q --no-deps fschat==0.2.36
    "$ref/bin/pip" install -q markdownify==0.11.6 beautifulsoup4 tqdm
  fi
}

# The release binary, built if needed.
ensure_vicuna() {
  make -C "$root" --no-print-directory build >/dev/null 2>&1
}

# datasketch and NLTK (the references of near-duplicate dedup and decontamination) in their own
# environment; $similar_ref after sourcing.
similar_ref=$work/similar-venv
ensure_similar_ref() {
  if ! "$similar_ref/bin/python" -c "import datasketch, nltk" 2>/dev/null; then
    python3 -m venv "$similar_ref"
    "$similar_ref/bin/pip" install -q datasketch==2.0.0 nltk==3.10.4
  fi
}

# The set-up both similarity benchmarks share: references, the binary, the synthetic data of MODE
# (neardup or decontaminate, 100k conversations, made once into $data), the CPU and the load.
similar_bench_setup() {
  ensure_similar_ref
  [ -x "$vicuna" ] || ensure_vicuna
  data=$work/$1
  if [ ! -f "$data/planted.txt" ]; then
    mkdir -p "$data"
    python3 "$root/scripts/bench/similar_data.py" "$1" "$data" 100000
  fi
  measure="python3 $root/scripts/bench/measure.py"
  python3 -c "import sys; sys.path.insert(0, '$root/scripts/bench'); import measure; print(measure.cpu_summary())"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared)"
}
