#!/usr/bin/env bash
# `vicuna prep clean` against FastChat's cleaner (`python -m fastchat.data.clean_sharegpt`, PyPI
# fschat with markdownify==0.11.6 and beautifulsoup4) on the large benchmark corpus, side by side:
# wall time, peak memory (PSS of the whole process tree) and the ratio; then the markdown fidelity
# of both outputs against the corpus's ground truth.
#   scripts/bench/prep.sh [WORK_DIR]      (needs ../shared beside the project root)
set -euo pipefail
source "$(dirname "$0")/common.sh" "${1:-}"
ensure_corpus
ensure_fastchat
ensure_vicuna
raw=$corpus/sharegpt_raw.json
measure="python3 $root/scripts/bench/measure.py"
echo "corpus: $raw ($(du -m "$raw" | cut -f1) MB, $(nproc) cores)"
ours=$($measure vicuna -- "$vicuna" prep clean "$raw" -o "$work/vicuna_clean.json")
theirs=$($measure fastchat -- "$ref/bin/python" -m fastchat.data.clean_sharegpt --in-file "$raw" --out-file "$work/fastchat_clean.json")
echo "$ours"
echo "$theirs"
python3 - "$ours" "$theirs" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"speed: vicuna {a['wall_s']:.2f} s, fastchat {b['wall_s']:.2f} s, ratio {b['wall_s'] / a['wall_s']:.1f}x")
print(f"peak memory (PSS): vicuna {a['peak_pss_mb']:.0f} MB, fastchat {b['peak_pss_mb']:.0f} MB, "
      f"ratio {b['peak_pss_mb'] / a['peak_pss_mb']:.1f}x")
PY
fidelity="python3 $shared/tools/markdown_fidelity.py"
echo "fidelity (assistant_exact assistant_normalized assistant_turns human_exact):"
echo "  vicuna:   $($fidelity "$work/vicuna_clean.json" "$corpus/sharegpt_raw.truth.json")"
echo "  fastchat: $($fidelity "$work/fastchat_clean.json" "$corpus/sharegpt_raw.truth.json")"
echo "fidelity with either number after a lazy bullet line (normalized, either-numbering, turns):"
echo "  vicuna:   $(python3 "$root/scripts/bench/fidelity_numbering.py" "$shared/tools/markdown_fidelity.py" "$work/vicuna_clean.json" "$corpus/sharegpt_raw.truth.json")"
