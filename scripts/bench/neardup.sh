#!/usr/bin/env bash
# Near-duplicate dedup speed and agreement: `vicuna prep dedup --near` (threshold 0.5, shingles of
# 2 words, 128 permutations: the defaults) against datasketch 2.0.0's MinHash + MinHashLSH in the
# insert-or-query loop (scripts/bench/neardup_reference.py, same words and shingles), on 100k
# synthetic conversations (scripts/bench/similar_data.py: 1 or 2 user turns of 8 to 80 words,
# 10% planted near-duplicates with 1 to 3 words edited). Prints the CPU and load, vicuna's wall
# time over 3 runs (on 2 threads), datasketch's, the ratio, the recall of planted near-duplicates
# and false positives of both, and how far their removals agree. Target: under 60 s on 2 cores.
#   scripts/bench/neardup.sh [WORK_DIR]
set -euo pipefail
source "$(dirname "$0")/common.sh" "${1:-}"
similar_bench_setup neardup
runs=()
for i in 1 2 3; do
  runs+=("$(RAYON_NUM_THREADS=2 $measure vicuna -- "$vicuna" prep dedup --near "$data/conversations.jsonl" \
    -o "$data/vicuna_out.jsonl" --report "$data/vicuna_report.json")")
done
theirs=$("$similar_ref/bin/python" "$root/scripts/bench/neardup_reference.py" "$data/conversations.jsonl" \
  "$data/datasketch_removed.txt" 0.5 2 128)
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$data" "$theirs" "${runs[@]}" <<'PY'
import json, statistics, sys
data, theirs, runs = sys.argv[1], json.loads(sys.argv[2]), [json.loads(a) for a in sys.argv[3:]]
ids = [json.loads(l)["id"] for l in open(f"{data}/conversations.jsonl")]
kept = {json.loads(l)["id"] for l in open(f"{data}/vicuna_out.jsonl")}
ours = set(ids) - kept
ref = set(open(f"{data}/datasketch_removed.txt").read().split())
planted = set(open(f"{data}/planted.txt").read().split())
report = json.load(open(f"{data}/vicuna_report.json"))
walls = [r["wall_s"] for r in runs]
med = statistics.median(walls)
print(f"input: {len(ids)} conversations, {len(planted)} planted near-duplicates")
print(f"vicuna prep dedup --near: {med:.2f} s median of {len(walls)} (min {min(walls):.2f}, max {max(walls):.2f}), "
      f"peak PSS {max(r['peak_pss_mb'] for r in runs):.0f} MB; removed {len(ours)} "
      f"({report['dropped']}, {report['counters'].get('near_duplicate_clusters', 0)} clusters)")
print(f"datasketch MinHashLSH (b={theirs['bands']}, r={theirs['rows']}): {theirs['seconds']:.2f} s; removed {len(ref)}")
print(f"speed ratio (datasketch / vicuna): {theirs['seconds'] / med:.1f}x")
for name, removed in (("vicuna", ours), ("datasketch", ref)):
    print(f"{name:>10}: recall of planted {len(removed & planted) / len(planted):.4f}, "
          f"false positives (an original removed) {len(removed - planted)}")
print(f"agreement: {len(ours & ref)} removed by both, {len(ours - ref)} only by vicuna, {len(ref - ours)} only by datasketch")
print(f"target under 60 s on 2 cores: {'PASS' if med < 60 else 'FAIL'}")
PY
