#!/usr/bin/env bash
# Decontamination speed and agreement: `vicuna prep decontaminate` (BLEU 0.2, 8-gram overlap 0.5:
# the defaults) against the plain all-pairs loop with NLTK 3.10.4's sentence_bleu and Python sets
# (scripts/bench/decontaminate_reference.py), on 100k synthetic conversations and 160 synthetic
# benchmark questions in Vicuna-80 and MT-bench formats with 200 planted paraphrases
# (scripts/bench/similar_data.py). The reference scores every 500th conversation (timed, then
# extrapolated to the whole file) and the planted ones. Prints the CPU and load, vicuna's wall
# time over 3 runs, the reference's extrapolated time, the ratio, the recall of the planted
# paraphrases, and whether both remove the same conversations where both decided.
#   scripts/bench/decontaminate.sh [WORK_DIR]
set -euo pipefail
source "$(dirname "$0")/common.sh" "${1:-}"
similar_bench_setup decontaminate
runs=()
for i in 1 2 3; do
  runs+=("$(RAYON_NUM_THREADS=2 $measure vicuna -- "$vicuna" prep decontaminate "$data/conversations.jsonl" \
    --against "$data/vicuna80.jsonl" "$data/mt_bench.jsonl" -o "$data/vicuna_out.jsonl" --report "$data/vicuna_report.json")")
done
"$similar_ref/bin/python" "$root/scripts/bench/decontaminate_reference.py" "$data/conversations.jsonl" \
  "$data/planted.txt" 500 "$data/vicuna80.jsonl" "$data/mt_bench.jsonl" > "$data/reference.json"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$data" "${runs[@]}" <<'PY'
import json, statistics, sys
data, runs = sys.argv[1], [json.loads(a) for a in sys.argv[2:]]
ref = json.load(open(f"{data}/reference.json"))
report = json.load(open(f"{data}/vicuna_report.json"))
ours = {r["id"] for r in report["removed"]}
theirs = set(ref["removed"])
planted = set(open(f"{data}/planted.txt").read().split())
decided = set(ref["sampled_ids"]) | planted
walls = [r["wall_s"] for r in runs]
med = statistics.median(walls)
extrapolated = ref["seconds"] * ref["total"] / ref["sample"]
print(f"input: {ref['total']} conversations, {report['questions']} questions, {len(planted)} planted paraphrases")
print(f"vicuna prep decontaminate: {med:.2f} s median of {len(walls)} (min {min(walls):.2f}, max {max(walls):.2f}), "
      f"peak PSS {max(r['peak_pss_mb'] for r in runs):.0f} MB; removed {len(ours)}")
print(f"NLTK all-pairs loop: {ref['seconds']:.2f} s for {ref['sample']} conversations, "
      f"extrapolated {extrapolated:.0f} s for {ref['total']}")
print(f"speed ratio (reference / vicuna): {extrapolated / med:.0f}x")
print(f"recall of planted paraphrases: vicuna {len(ours & planted) / len(planted):.3f}, "
      f"reference {len(theirs & planted) / len(planted):.3f}")
disagree = sorted((ours ^ theirs) & decided)
print(f"agreement on the {len(decided)} conversations the reference decided: "
      f"{len(decided) - len(disagree)} same, {len(disagree)} differ {disagree[:10]}")
print(f"removed outside the planted ones (vicuna, whole file): {len(ours - planted)}")
PY
