#!/usr/bin/env python3
"""Training speed and memory of `vicuna train` against `transformers` on the same model and data,
on CPU in fp32 with the same thread count, plus model FLOPs utilisation against a measured peak.

Usage: train.py VICUNA_BINARY MODEL_DIR WORK_DIR        (WORK_DIR holds encoded_512.jsonl and
                                                          encoded_2048.jsonl from `prep encode`)
       train.py --hf MODEL_DIR SAMPLES.jsonl BATCH STEPS CHECKPOINTING OUT.json   (one transformers
                                                          run; the first form starts these)
The transformers side is the loop FastChat's trainer runs: LlamaForCausalLM (sdpa attention),
forward with `labels=` (loss over the logits of every position), backward, clip_grad_norm_(1.0),
torch.optim.AdamW, zero_grad; `activation_checkpointing_enable()` for checkpointing.
Both sides train on samples of exactly the context length (conversations truncated to it), so
every micro-batch is full, unpadded and the same shape; lr 1e-5 constant, no weight decay.

Speed: the median tokens/s of the steps after the first 2 (each side times its own steps: batch,
forward, backward, clip, optimizer step, zero), in runs nothing samples: measure.py's /proc
sampling of a process of several GB costs most of a core and holds its memory map's lock, so it
would slow the runs it watches. Memory: the peak PSS of the whole process, sampled by measure.py
in a short run of its own per configuration (vicuna's includes its checkpoint and export at the
end), and the kernel's exact peak RSS (VmHWM) after the last step of the speed run.
MFU = tokens/s * model FLOPs per token / peak, with model FLOPs per token = 6 N + 12 L T d:
N the parameters that take part in matmuls (all but the input embedding: layers, norms, LM head),
12 L T d the attention scores and values (forward and backward, PaLM's convention, not halved for
the causal mask); recomputation under checkpointing is not counted. The peak is the best fp32
matmul rate of torch at n=2048 on the same threads after warm-up."""
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import torch

THREADS = int(os.environ.get("THREADS", "2"))
STEPS = int(os.environ.get("STEPS", "8"))
MEM_STEPS = int(os.environ.get("MEM_STEPS", "3"))
LONG_STEPS = int(os.environ.get("LONG_STEPS", "3"))
LONG_BATCH = int(os.environ.get("LONG_BATCH", "1"))
WARMUP = 2
BATCH, LENGTH, LONG = 4, 512, 2048
LR = 1e-5
HERE = os.path.dirname(os.path.abspath(__file__))
ENV = dict(os.environ, OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS))


def hwm_bytes():
    with open("/proc/self/status") as f:
        line = next(l for l in f if l.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def hf_worker(model_dir, data, batch, steps, checkpointing, out):
    """One transformers run; writes one record per optimizer step, in vicuna's metrics keys."""
    torch.set_num_threads(THREADS)
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa")
    model.config.use_cache = False
    if checkpointing:
        model.activation_checkpointing_enable()
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0)
    with open(data) as f:
        samples = [json.loads(line) for line in f]
    records = []
    for step in range(steps):
        micro = samples[step * batch:(step + 1) * batch]
        start = time.perf_counter()
        ids = torch.tensor([s["input_ids"] for s in micro])
        labels = torch.tensor([s["labels"] for s in micro])
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        seconds = time.perf_counter() - start
        records.append({"step": step + 1, "loss": loss.item(), "tokens": ids.numel(),
                        "tokens_per_second": ids.numel() / seconds, "peak_memory_bytes": hwm_bytes()})
    with open(out, "w") as f:
        json.dump(records, f)


def measure(label, cmd):
    out = subprocess.run([sys.executable, os.path.join(HERE, "measure.py"), label, "--"] + cmd,
                         check=True, capture_output=True, text=True, env=ENV).stdout
    return json.loads(out)


def subset(work, length, count):
    """The first `count` encoded samples of exactly `length` tokens, in file order."""
    path = os.path.join(work, f"samples_{length}_{count}.jsonl")
    if os.path.exists(path):
        return path
    kept = []
    with open(os.path.join(work, f"encoded_{length}.jsonl")) as f:
        for line in f:
            if len(json.loads(line)["input_ids"]) == length:
                kept.append(line if line.endswith("\n") else line + "\n")
                if len(kept) == count:
                    break
    if len(kept) < count:
        sys.exit(f"only {len(kept)} samples of {length} tokens, {count} needed")
    with open(path + ".tmp", "w") as f:
        f.writelines(kept)
    os.replace(path + ".tmp", path)
    return path


def run(side, binary, model, work, length, batch, steps, checkpointing, monitored):
    """Trains `steps` steps in a process of its own (under measure.py when `monitored`); returns
    the median tokens/s after warm-up, the process's peak PSS (monitored runs) and its VmHWM."""
    data = subset(work, length, batch * steps)
    label = f"{side}-{batch}x{length}-{'ckpt' if checkpointing else 'nockpt'}"
    if side == "vicuna":
        out_dir = os.path.join(work, label)
        shutil.rmtree(out_dir, ignore_errors=True)
        cmd = [binary, "train", "--model", model, "--data", data, "--output-dir", out_dir,
               "--micro-batch-size", str(batch), "--gradient-accumulation", "1", "--max-steps", str(steps),
               "--max-length", str(length), "--gradient-checkpointing", str(checkpointing).lower(),
               "--group-by-length", "false", "--packing", "false", "--learning-rate", str(LR),
               "--warmup-ratio", "0", "--lr-schedule", "constant", "--weight-decay", "0",
               "--save-interval", "100000", "--keep-checkpoints", "1", "--seed", "0"]
        out = os.path.join(out_dir, "metrics.jsonl")
    else:
        out = os.path.join(work, label + ".json")
        cmd = [sys.executable, os.path.abspath(__file__), "--hf", model, data, str(batch), str(steps),
               str(int(checkpointing)), out]
    if monitored:
        pss = measure(label, cmd)["peak_pss_mb"]
    else:
        pss = None
        done = subprocess.run(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            sys.exit(f"{label} failed ({done.returncode}):\n{done.stderr}")
    with open(out) as f:
        records = [json.loads(line) for line in f] if side == "vicuna" else json.load(f)
    assert len(records) == steps and all(r["tokens"] == batch * length for r in records), label
    timed = records[WARMUP:] if len(records) > WARMUP else records
    return {
        "tokens_per_second": statistics.median(r["tokens_per_second"] for r in timed),
        "pss_mb": pss,
        "hwm_mb": records[-1]["peak_memory_bytes"] / 2**20,
        "loss": (records[0]["loss"], records[-1]["loss"]),
    }


def matmul_peak_gflops(n=2048):
    """Best fp32 matmul rate over 10 timed runs after 3 warm-up runs."""
    torch.set_num_threads(THREADS)
    a, b = torch.randn(n, n), torch.randn(n, n)
    c = torch.empty(n, n)
    for _ in range(3):
        torch.mm(a, b, out=c)
    best = float("inf")
    for _ in range(10):
        t = time.perf_counter()
        torch.mm(a, b, out=c)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def flops_per_token(model_dir, length):
    """6 N + 12 L T d (see the module docstring), and N."""
    with open(os.path.join(model_dir, "config.json")) as f:
        c = json.load(f)
    d, layers, ff, vocab = c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"], c["vocab_size"]
    heads = c["num_attention_heads"]
    kv = c.get("num_key_value_heads") or heads
    head_dim = c.get("head_dim") or d // heads
    per_layer = d * heads * head_dim + 2 * d * kv * head_dim + heads * head_dim * d + 3 * d * ff + 2 * d
    n = layers * per_layer + d + vocab * d
    return 6 * n + 12 * layers * length * heads * head_dim, n


def main():
    if sys.argv[1] == "--hf":
        model, data, batch, steps, ckpt, out = sys.argv[2:8]
        hf_worker(model, data, int(batch), int(steps), ckpt == "1", out)
        return
    binary, model, work = sys.argv[1:4]
    peak = matmul_peak_gflops()
    fpt, n = flops_per_token(model, LENGTH)
    print(f"model: {model}, {n / 1e6:.1f}M parameters in matmuls (all but the input embedding); "
          f"{THREADS} threads on {os.cpu_count()} cores")
    print(f"fp32 matmul peak (torch, n=2048, {THREADS} threads): {peak:.1f} GFLOP/s")
    print(f"model FLOPs per token at {LENGTH}: 6N + 12LTd = {fpt / 1e6:.0f} MFLOP "
          f"(attention {100 * (fpt - 6 * n) / fpt:.0f}%; recomputation not counted)")
    mfu = lambda tps: 100 * tps * fpt / (peak * 1e9)
    speed, memory = {}, {}
    for ckpt in (False, True):
        for side in ("vicuna", "transformers"):
            speed[side, ckpt] = run(side, binary, model, work, LENGTH, BATCH, STEPS, ckpt, monitored=False)
    for ckpt in (False, True):
        for side in ("vicuna", "transformers"):
            memory[side, ckpt] = run(side, binary, model, work, LENGTH, BATCH, MEM_STEPS, ckpt, monitored=True)
    on_off = lambda ckpt: "on" if ckpt else "off"
    print(f"\n{BATCH} x {LENGTH} tokens, fp32: tokens/s = median of steps {WARMUP + 1}-{STEPS} of a {STEPS}-step run "
          f"(speed = vicuna / transformers)")
    print(f"{'checkpointing':<14}{'vicuna tok/s':>13}{'hf tok/s':>10}{'speed':>8}{'MFU vicuna':>12}{'MFU hf':>8}"
          f"{'loss vicuna':>16}{'loss hf':>16}")
    for ckpt in (False, True):
        v, h = speed["vicuna", ckpt], speed["transformers", ckpt]
        loss = lambda r: f"{r['loss'][0]:.3f}->{r['loss'][1]:.3f}"
        print(f"{on_off(ckpt):<14}{v['tokens_per_second']:>13.0f}{h['tokens_per_second']:>10.0f}"
              f"{v['tokens_per_second'] / h['tokens_per_second']:>7.2f}x"
              f"{mfu(v['tokens_per_second']):>11.1f}%{mfu(h['tokens_per_second']):>7.1f}%"
              f"{loss(v):>16}{loss(h):>16}")
    print(f"\n{BATCH} x {LENGTH} tokens, fp32: peak memory in MB; PSS = peak PSS of the process tree (measure.py, "
          f"a {MEM_STEPS}-step run of its own), HWM = VmHWM after the last step of the {STEPS}-step run "
          f"(memory = vicuna / transformers)")
    print(f"{'checkpointing':<14}{'vicuna PSS':>11}{'hf PSS':>8}{'memory':>8}{'vicuna HWM':>12}{'hf HWM':>8}{'memory':>8}")
    for ckpt in (False, True):
        v, h = memory["vicuna", ckpt], memory["transformers", ckpt]
        vs, hs = speed["vicuna", ckpt], speed["transformers", ckpt]
        print(f"{on_off(ckpt):<14}{v['pss_mb']:>11.0f}{h['pss_mb']:>8.0f}{v['pss_mb'] / h['pss_mb']:>7.2f}x"
              f"{vs['hwm_mb']:>12.0f}{hs['hwm_mb']:>8.0f}{vs['hwm_mb'] / hs['hwm_mb']:>7.2f}x")

    print(f"\n{LONG_BATCH} x {LONG} tokens, fp32, {LONG_STEPS}-step runs: peak memory with checkpointing / without "
          f"(PSS, and VmHWM in brackets)")
    for side in ("vicuna", "transformers"):
        on = run(side, binary, model, work, LONG, LONG_BATCH, LONG_STEPS, True, monitored=True)
        off = run(side, binary, model, work, LONG, LONG_BATCH, LONG_STEPS, False, monitored=True)
        print(f"{side:>12}: checkpointing {on['pss_mb']:.0f} MB ({on['hwm_mb']:.0f}), without {off['pss_mb']:.0f} MB "
              f"({off['hwm_mb']:.0f}), ratio {on['pss_mb'] / off['pss_mb']:.2f} ({on['hwm_mb'] / off['hwm_mb']:.2f})")

if __name__ == "__main__":
    main()
