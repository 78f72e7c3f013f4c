#!/usr/bin/env python3
"""The reference of `vicuna prep dedup --near` for scripts/bench/neardup.sh: datasketch's MinHash
and MinHashLSH in the usual insert-or-query loop, on the same text (the user turns), words
(re.findall(r"[^\\W_]+", text.lower())) and shingles (word n-grams; a shorter text is one).

  neardup_reference.py CONVERSATIONS.jsonl REMOVED_OUT THRESHOLD SHINGLE NUM_PERM
Writes the removed ids, one a line, and prints one JSON line: seconds, removed, bands, rows."""
import json
import re
import sys
import time

from datasketch import MinHash, MinHashLSH

WORD = re.compile(r"[^\W_]+")


def main():
    path, removed_out = sys.argv[1], sys.argv[2]
    threshold, shingle, num_perm = float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    start = time.perf_counter()
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    removed = []
    with open(path) as f:
        # drawn once, as datasketch's docs advise for many MinHashes: drawing them per record
        # (seed=1 each time) would time numpy's generator, not the algorithm
        template = MinHash(num_perm=num_perm, seed=1)
        for line in f:
            record = json.loads(line)
            words = []
            for turn in record["conversations"]:
                if turn["from"] == "human":
                    words.extend(WORD.findall(turn["value"].lower()))
            if not words:
                continue
            if len(words) <= shingle:
                grams = {" ".join(words)}
            else:
                grams = {" ".join(words[i:i + shingle]) for i in range(len(words) - shingle + 1)}
            m = MinHash(num_perm=num_perm, permutations=template.permutations, scheme=template.scheme)
            m.update_batch([g.encode() for g in grams])
            if lsh.query(m):
                removed.append(record["id"])
            else:
                lsh.insert(record["id"], m)
    with open(removed_out, "w") as f:
        f.write("\n".join(removed) + "\n")
    print(json.dumps({"seconds": time.perf_counter() - start, "removed": len(removed), "bands": lsh.b, "rows": lsh.r}))


if __name__ == "__main__":
    main()
