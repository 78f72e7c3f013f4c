#!/usr/bin/env python3
"""Peak memory of `vicuna model delta apply` next to FastChat's apply_delta, on the same model of
several shards, measured in the same run (scripts/bench/delta.sh runs it).

Usage: delta.py VICUNA FASTCHAT_PYTHON WORK_DIR TOKENIZER_DIR
Makes (once, under WORK_DIR) a random fp16 Llama base and a random fp16 "delta" of the same shape
(hidden $HIDDEN, $LAYERS layers, intermediate $INTER, the tokenizer's vocabulary; default about
1.1 GB each) saved by transformers in shards of $SHARD (default 200MB), then runs, each in a
process of its own sampled by measure.py (the PSS of the process tree every 10 ms, and the largest
RSS): vicuna with --max-shard-size $SHARD, then FastChat 0.2.36's apply_delta (called as its
__main__ block would; it loads both models whole in fp16). Prints the CPU, both measurements, the
model and shard sizes, vicuna's own summary (its VmHWM and its RSS before the first tensor: libtorch)
and whether the two outputs hold the same bits."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from measure import cpu_summary  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def make_models(work, tokenizer, hidden, layers, inter, shard):
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer)
    for name, seed in [("base", 1), ("delta", 2)]:
        path = os.path.join(work, name)
        if os.path.exists(os.path.join(path, "config.json")):
            continue
        config = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=inter,
                             num_hidden_layers=layers, num_attention_heads=hidden // 128,
                             num_key_value_heads=hidden // 128, tie_word_embeddings=False)
        torch.manual_seed(seed)
        with torch.device("meta"):
            model = LlamaForCausalLM(config)
        model = model.to_empty(device="cpu").to(torch.float16)
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0.0, 0.02)
        tmp = path + ".tmp"
        model.save_pretrained(tmp, max_shard_size=shard)
        tok.save_pretrained(tmp)
        os.rename(tmp, path)
        del model


def measure(label, cmd):
    out = subprocess.run([sys.executable, os.path.join(HERE, "measure.py"), label, "--"] + cmd,
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def same_bits(a, b):
    import torch
    from safetensors import safe_open

    def tensors(d):
        index = os.path.join(d, "model.safetensors.index.json")
        files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
        for f in files:
            with safe_open(os.path.join(d, f), "pt") as st:
                for k in st.keys():
                    yield k, st.get_tensor(k)

    ta = dict(tensors(a))
    differ = 0
    for k, t in tensors(b):
        differ += int((ta.pop(k).view(torch.int16) != t.view(torch.int16)).sum())
    return differ == 0 and not ta


def main():
    vicuna, fastchat_python, work, tokenizer = sys.argv[1:5]
    hidden = int(os.environ.get("HIDDEN", "2048"))
    layers = int(os.environ.get("LAYERS", "8"))
    inter = int(os.environ.get("INTER", "5504"))
    shard = os.environ.get("SHARD", "200MB")
    os.makedirs(work, exist_ok=True)
    make_models(work, tokenizer, hidden, layers, inter, shard)
    base, delta = os.path.join(work, "base"), os.path.join(work, "delta")
    ours, theirs = os.path.join(work, "out-vicuna"), os.path.join(work, "out-fastchat")
    for d in (ours, theirs):
        subprocess.run(["rm", "-rf", d], check=True)

    print(cpu_summary())
    size = sum(os.path.getsize(os.path.join(base, f)) for f in os.listdir(base) if f.endswith(".safetensors"))
    shards = len([f for f in os.listdir(base) if f.endswith(".safetensors")])
    print(f"model: hidden {hidden}, {layers} layers, intermediate {inter}, fp16, {size / 2**20:.0f} MiB in "
          f"{shards} shards of at most {shard} (base and delta each)")
    v = measure("vicuna model delta apply", [vicuna, "model", "delta", "apply", "--base", base, "--delta", delta,
                                             "-o", ours, "--max-shard-size", shard, "--json"])
    code = ("import sys, fastchat.model.apply_delta as m; m.apply_delta(sys.argv[1], sys.argv[2], sys.argv[3])")
    f = measure("fastchat apply_delta", [fastchat_python, "-W", "ignore", "-c", code, base, theirs, delta])
    summary = json.loads(subprocess.run([vicuna, "model", "delta", "apply", "--base", base, "--delta", delta, "-o",
                                         ours + "-again", "--max-shard-size", shard, "--json"],
                                        check=True, capture_output=True, text=True).stdout)
    subprocess.run(["rm", "-rf", ours + "-again"], check=True)
    largest = max(os.path.getsize(os.path.join(ours, f)) for f in os.listdir(ours) if f.endswith(".safetensors"))
    for r in (v, f):
        print(json.dumps(r))
    print(f"vicuna: VmHWM {summary['peak_rss_bytes'] / 2**20:.0f} MiB, of which "
          f"{summary['start_rss_bytes'] / 2**20:.0f} MiB before the first tensor (libtorch); "
          f"streamed part {(summary['peak_rss_bytes'] - summary['start_rss_bytes']) / 2**20:.0f} MiB; "
          f"largest output shard {largest / 2**20:.0f} MiB")
    print(f"peak PSS: vicuna {v['peak_pss_mb']:.0f} MiB, FastChat {f['peak_pss_mb']:.0f} MiB "
          f"({f['peak_pss_mb'] / v['peak_pss_mb']:.1f}x); wall: vicuna {v['wall_s']:.1f} s, FastChat {f['wall_s']:.1f} s")
    print(f"outputs bit-identical: {same_bits(ours, theirs)}")


if __name__ == "__main__":
    main()
