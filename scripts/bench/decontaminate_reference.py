#!/usr/bin/env python3
"""The reference of `vicuna prep decontaminate` for scripts/bench/decontaminate.sh: the plain loop,
every user turn against every question, with NLTK 3.10.4's sentence_bleu (method1 smoothing)
and the n-gram overlap computed with Python sets, on the same words as vicuna.

  decontaminate_reference.py CONVERSATIONS.jsonl PLANTED.txt STRIDE QUESTIONS.jsonl...
Scores every STRIDE-th conversation (timed, for the extrapolation to the whole file) and the
planted ones, and prints one JSON line: seconds for the timed sample, its size, the whole file's
size, and the ids it would remove ("removed")."""
import json
import re
import sys
import time

from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

WORD = re.compile(r"[^\W_]+")
BLEU, NGRAM, OVERLAP = 0.2, 8, 0.5


def words(text):
    return WORD.findall(text.lower())


def grams(w, n):
    return {tuple(w)} if len(w) <= n else {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}


def main():
    path, planted_path, stride, files = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
    questions = []
    for name in files:
        for line in open(name):
            if line.strip():
                q = json.loads(line)
                for turn in q.get("turns") or [q["text"]]:
                    w = words(turn)
                    questions.append((w, grams(w, NGRAM), min(NGRAM, len(w))))
    planted = set(open(planted_path).read().split())
    smooth = SmoothingFunction().method1

    def contaminated(record):
        for turn in record["conversations"]:
            if turn["from"] != "human":
                continue
            t = words(turn["value"])
            if not t:
                continue
            by_len = {}
            for qw, qg, n in questions:
                if n not in by_len:
                    by_len[n] = {tuple(t[i:i + n]) for i in range(len(t) - n + 1)}
                if len(qg & by_len[n]) / len(qg) >= OVERLAP:
                    return True
                if sentence_bleu([qw], t, smoothing_function=smooth) >= BLEU:
                    return True
        return False

    records = [json.loads(line) for line in open(path)]
    start = time.perf_counter()
    sample = records[::stride]
    removed = [r["id"] for r in sample if contaminated(r)]
    seconds = time.perf_counter() - start
    removed += [r["id"] for r in records if r["id"] in planted and r["id"] not in set(removed) and contaminated(r)]
    print(json.dumps({"seconds": seconds, "sample": len(sample), "total": len(records), "removed": removed,
                      "sampled_ids": [r["id"] for r in sample]}))


if __name__ == "__main__":
    main()
