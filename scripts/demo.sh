#!/usr/bin/env bash
# The main job end to end on the bundled example: a raw ShareGPT export (HTML answers, pager text,
# a rate-limit turn, duplicates) cleaned into training conversations, then its statistics.
#   demo.sh VICUNA_BINARY OUT_DIR
set -euo pipefail
vicuna=${1:?usage: demo.sh VICUNA_BINARY OUT_DIR}; out=${2:?usage: demo.sh VICUNA_BINARY OUT_DIR}
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
echo "== vicuna prep: raw export -> clean conversations"
"$vicuna" prep "$here/examples/sharegpt_raw_example.json" -o "$out/clean.json" --report "$out/prep_report.json"
echo
echo "== vicuna prep stats"
"$vicuna" prep stats "$out/clean.json"
echo
echo "clean conversations: $out/clean.json (report: $out/prep_report.json)"
