#!/usr/bin/env python3
"""Deterministic synthetic data for scripts/bench/neardup.sh and decontaminate.sh.

  similar_data.py neardup OUT_DIR N          conversations.jsonl (N conversations, 1 or 2 user
                                             turns of 8 to 80 words; 10% are planted near-duplicates
                                             of an earlier conversation: 1 to 3 words substituted,
                                             inserted or deleted) and planted.txt (their ids)
  similar_data.py decontaminate OUT_DIR N    vicuna80.jsonl (80 questions, Vicuna-80 format),
                                             mt_bench.jsonl (40 questions x 2 turns, MT-bench
                                             format): 160 question texts of 6 to 30 words;
                                             conversations.jsonl (N conversations) with 200 planted
                                             paraphrases (2 words of a question changed, a
                                             clause moved) and planted.txt

Words come from a Zipf-distributed vocabulary of 20,000 made-up words plus English function
words (a third of all words), so that texts share common words and bigrams as real ones do."""
import json
import random
import sys

FUNCTION = ("the a of to and in is how what can you i my for with please explain write it that this on be "
            "are do me about an why should would could your which when where who from by at as or if not").split()


def vocabulary(rng, size=20000):
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ber", "dan", "fel", "gor", "hin", "jut",
                 "pes", "wex", "qua", "zir", "mo", "ly"]
    words = set()
    while len(words) < size:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    words = sorted(words)
    rng.shuffle(words)
    return words


class Words:
    def __init__(self, rng):
        self.rng = rng
        self.vocab = vocabulary(rng)
        weights = [1.0 / (i + 1) for i in range(len(self.vocab))]
        total = sum(weights)
        self.cum = []
        acc = 0.0
        for w in weights:
            acc += w / total
            self.cum.append(acc)

    def content(self):
        import bisect
        return self.vocab[min(bisect.bisect_left(self.cum, self.rng.random()), len(self.vocab) - 1)]

    def word(self):
        return self.rng.choice(FUNCTION) if self.rng.random() < 0.33 else self.content()

    def text(self, lo, hi):
        return [self.word() for _ in range(self.rng.randint(lo, hi))]


def edit(rng, words, source, edits):
    w = list(words)
    for _ in range(edits):
        i = rng.randrange(len(w))
        op = rng.randrange(3)
        if op == 0:
            w[i] = source.content()
        elif op == 1:
            w.insert(i, source.content())
        elif len(w) > 2:
            del w[i]
    return w


def sentence(words):
    s = " ".join(words)
    return s[:1].upper() + s[1:] + "?"


def record(cid, users):
    turns = []
    for u in users:
        turns.append({"from": "human", "value": u})
        turns.append({"from": "gpt", "value": "An answer to that."})
    return {"id": cid, "conversations": turns}


def neardup(out, n):
    rng = random.Random(14)
    words = Words(rng)
    convs, planted = [], []
    for i in range(n):
        if convs and rng.random() < 0.10:
            source = convs[rng.randrange(len(convs))]
            users = [sentence(edit(rng, u, words, rng.randint(1, 3))) for u in source[1]]
            cid = f"near_{i}"
            planted.append(cid)
            convs.append((cid, [u.rstrip("?").lower().split() for u in users], users))
            continue
        users_words = [words.text(8, 80) for _ in range(rng.choice([1, 1, 1, 2]))]
        convs.append((f"c_{i}", users_words, [sentence(u) for u in users_words]))
    with open(f"{out}/conversations.jsonl", "w") as f:
        for cid, _, users in convs:
            f.write(json.dumps(record(cid, users)) + "\n")
    with open(f"{out}/planted.txt", "w") as f:
        f.write("\n".join(planted) + "\n")


def decontaminate(out, n):
    rng = random.Random(80)
    words = Words(rng)
    questions = [words.text(6, 30) for _ in range(160)]
    with open(f"{out}/vicuna80.jsonl", "w") as f:
        for i in range(80):
            f.write(json.dumps({"question_id": i + 1, "text": sentence(questions[i]), "category": "generic"}) + "\n")
    with open(f"{out}/mt_bench.jsonl", "w") as f:
        for i in range(40):
            turns = [sentence(questions[80 + 2 * i]), sentence(questions[81 + 2 * i])]
            f.write(json.dumps({"question_id": 81 + i, "category": "writing", "turns": turns}) + "\n")
    planted_at = set(rng.sample(range(n), 200))
    planted = []
    with open(f"{out}/conversations.jsonl", "w") as f:
        for i in range(n):
            users = [sentence(words.text(8, 80)) for _ in range(rng.choice([1, 1, 1, 2]))]
            if i in planted_at:
                q = edit(rng, rng.choice(questions), words, 2)
                cut = rng.randrange(1, len(q))
                users[-1] = sentence(q[cut:] + q[:cut] if rng.random() < 0.3 else q)
                planted.append(f"c_{i}")
            f.write(json.dumps(record(f"c_{i}", users)) + "\n")
    with open(f"{out}/planted.txt", "w") as f:
        f.write("\n".join(planted) + "\n")


if __name__ == "__main__":
    mode, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    {"neardup": neardup, "decontaminate": decontaminate}[mode](out, n)
