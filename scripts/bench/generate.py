#!/usr/bin/env python3
"""Decoding speed of `vicuna generate` against `transformers` `generate()` on the same model,
greedy with a KV cache, plus the memory-bandwidth limit of batch-1 decoding on this machine.

Usage: generate.py VICUNA_BINARY MODEL_DIR
Per-token rates exclude start-up, loading and prefill: each side generates 16 and then 144 new
tokens and the rate is 128 tokens over the difference in time (best of 5 runs: other tenants
of this machine slow single runs by up to 1.7x). Batch-1 decoding reads every weight once per
token, so its limit is (copy bandwidth) / (weight bytes). The bandwidth varies by a factor of
two from minute to minute too, so it is sampled before every timed batch-1 run and the limit
uses the best sample: the best rate is held against the best bandwidth seen meanwhile.

bf16: batch-16 decoding with `--dtype bf16` against our fp32 and against transformers loaded in bf16
(from_pretrained(dtype=bfloat16)), the same way. The issue's target (bf16 at least 1.5x our fp32 at
batch 16) applies on CPUs with AMX only; the CPU line says whether this one has it."""
import json
import os
import subprocess
import sys
import time

import torch
from transformers import AutoTokenizer, LlamaForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import measure  # noqa: E402  (cpu_summary)

PROMPT = "Write a short story about a robot who learns to paint, in the style of a fairy tale."
SHORT, LONG, BATCH = 16, 144, 16


BANDWIDTH = []  # GB/s samples taken during the run


def vicuna_seconds(binary, model, new_tokens, batch, dtype="fp32"):
    args = [binary, "generate", "--model", model, "--max-new-tokens", str(new_tokens), "--json", "--dtype", dtype]
    for k in range(batch):
        args += ["--prompt", f"{PROMPT} ({k})" if batch > 1 else PROMPT]
    best = float("inf")
    for _ in range(5):
        if batch == 1:
            sample_bandwidth()
        t = time.perf_counter()
        out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
        best = min(best, time.perf_counter() - t)
        counts = [len(json.loads(line)["ids"]) for line in out.splitlines()]
        assert all(c == new_tokens for c in counts), f"a row stopped early: {counts}"
    return best


def hf_seconds(model, tok, new_tokens, batch):
    prompts = [f"{PROMPT} ({k})" if batch > 1 else PROMPT for k in range(batch)]
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True)
    best = float("inf")
    for _ in range(5):
        if batch == 1:
            sample_bandwidth()
        t = time.perf_counter()
        with torch.no_grad():
            model.generate(**enc, do_sample=False, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                           eos_token_id=None, pad_token_id=tok.pad_token_id)
        best = min(best, time.perf_counter() - t)
    return best


def sample_bandwidth():
    """Bytes copied per second between two 1 GiB buffers (both touched first, so no page is
    the shared zero page), the rate at which weights can stream from memory; best of 3."""
    src = torch.ones(256 * 2**20, dtype=torch.float32)  # 1 GiB
    dst = torch.zeros_like(src)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - t)
    BANDWIDTH.append(src.numel() * 4 / best / 1e9)


def main():
    binary, model_dir = sys.argv[1], sys.argv[2]
    print(measure.cpu_summary())
    torch.set_num_threads(os.cpu_count())
    tok = AutoTokenizer.from_pretrained(model_dir)
    if tok.pad_token is None:
        tok.pad_token = tok.unk_token or tok.eos_token
    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa").eval()
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    rate = lambda f, *a: (LONG - SHORT) / (f(*a, LONG) - f(*a, SHORT))
    ours1 = rate(lambda n: vicuna_seconds(binary, model_dir, n, 1))
    theirs1 = rate(lambda n: hf_seconds(model, tok, n, 1))
    ours16 = BATCH * rate(lambda n: vicuna_seconds(binary, model_dir, n, BATCH))
    theirs16 = BATCH * rate(lambda n: hf_seconds(model, tok, n, BATCH))
    limit = max(BANDWIDTH) * 1e9 / weight_bytes
    print(f"model: {model_dir}, {weight_bytes / 1e6:.0f} MB of fp32 weights, {os.cpu_count()} cores")
    print(f"copy bandwidth over the run: {min(BANDWIDTH):.1f} to {max(BANDWIDTH):.1f} GB/s ({len(BANDWIDTH)} samples)")
    print(f"batch-1 limit (best copy bandwidth / weight bytes): {limit:.1f} tokens/s")
    print(f"batch 1:  vicuna {ours1:.1f} tokens/s ({100 * ours1 / limit:.0f}% of the limit), "
          f"transformers {theirs1:.1f} tokens/s, ratio {ours1 / theirs1:.2f}x")
    print(f"batch {BATCH}: vicuna {ours16:.1f} tokens/s ({ours16 / ours1:.1f}x its batch 1), "
          f"transformers {theirs16:.1f} tokens/s, ratio {ours16 / theirs16:.2f}x")
    ours16_bf16 = BATCH * rate(lambda n: vicuna_seconds(binary, model_dir, n, BATCH, "bf16"))
    model16 = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, attn_implementation="sdpa").eval()
    theirs16_bf16 = BATCH * rate(lambda n: hf_seconds(model16, tok, n, BATCH))
    amx = measure.has_amx()
    print(f"batch {BATCH}, bf16: vicuna {ours16_bf16:.1f} tokens/s ({ours16_bf16 / ours16:.2f}x its fp32), "
          f"transformers bf16 {theirs16_bf16:.1f} tokens/s, ratio {ours16_bf16 / theirs16_bf16:.2f}x; "
          + (f"target (AMX) 1.5x fp32 {'met' if ours16_bf16 >= 1.5 * ours16 else 'NOT met'}" if amx
             else "no target on this CPU (no AMX)"))


if __name__ == "__main__":
    main()
