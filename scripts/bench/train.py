#!/usr/bin/env python3
"""Training speed and memory of `vicuna train` against `transformers` on the same model and data,
on CPU in fp32 with the same thread count, plus model FLOPs utilisation against a measured peak.

Usage: train.py VICUNA_BINARY MODEL_DIR WORK_DIR        (WORK_DIR holds encoded_512.jsonl and
                                                          encoded_2048.jsonl from `prep encode`)
       train.py --hf MODEL_DIR SAMPLES.jsonl BATCH STEPS CHECKPOINTING OUT.jsonl   (one transformers
                                                          run; the first form starts these)
The transformers side is the loop FastChat's trainer runs: LlamaForCausalLM (sdpa attention),
forward with `labels=` (loss over the logits of every position), backward, clip_grad_norm_(1.0),
torch.optim.AdamW, zero_grad; `activation_checkpointing_enable()` for checkpointing.
Both sides train on samples of exactly the context length (conversations truncated to it), so
every micro-batch is full, unpadded and the same shape; lr 1e-5 constant, no weight decay.

Speed: the median tokens/s of the steps after the first 2 (each side times its own steps: batch,
forward, backward, clip, optimizer step, zero), in runs nothing samples: measure.py's /proc
sampling (smaps_rollup every 10 ms) of a process of a few GB takes over half a core, which on 2
cores would slow the runs it watches. Memory: in a short run of its own per configuration, the peak
PSS of the process tree while training (sampled with measure.py's functions every 10 ms until the
last step's record is written; vicuna's peak including the checkpoint and export it writes at
the end is shown too) and the kernel's exact peak RSS (VmHWM) after the last step.
MFU = tokens/s * model FLOPs per token / peak, with model FLOPs per token = 6 N + 12 L T d:
N the parameters that take part in matmuls (all but the input embedding: layers, norms, LM head),
12 L T d the attention scores and values (forward and backward, PaLM's convention, not halved for
the causal mask); recomputation under checkpointing is not counted. The peak is the best fp32
matmul rate of torch at n=2048 on the same threads after warm-up.

bf16 (section 4): `vicuna train --dtype bf16` (bf16 weights and activations, fp32 masters, moments,
gradient sums and loss) against transformers with `torch.autocast("cpu", dtype=torch.bfloat16)`
around forward and loss (fp32 weights, the usual CPU mixed-precision recipe), both without
checkpointing, and both sides in fp32 beside them, interleaved, REPEATS runs each (median and
range); MFU against the best bf16 matmul rate measured the same way; peak memory of vicuna's bf16
run against its fp32 run. The issue's targets (2.5x our fp32 and 2x transformers' autocast, no more
memory than fp32) apply on CPUs with AMX only: without it the section says so.
SECTIONS (environment, default "fp32,long,bf16") picks the sections: fp32 is 1-2, long is 3."""
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import measure  # noqa: E402  (its /proc sampling of a process tree)

THREADS = int(os.environ.get("THREADS", "2"))
STEPS = int(os.environ.get("STEPS", "8"))
MEM_STEPS = int(os.environ.get("MEM_STEPS", "3"))
LONG_STEPS = int(os.environ.get("LONG_STEPS", "3"))
LONG_BATCH = int(os.environ.get("LONG_BATCH", "2"))
REPEATS = int(os.environ.get("REPEATS", "3"))
SECTIONS = os.environ.get("SECTIONS", "fp32,long,bf16").split(",")
WARMUP = 2
BATCH, LENGTH, LONG = 4, 512, 2048
LR = 1e-5
ENV = dict(os.environ, OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS))


def hwm_bytes():
    with open("/proc/self/status") as f:
        line = next(l for l in f if l.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def hf_worker(model_dir, data, batch, steps, checkpointing, out, autocast=False):
    """One transformers run; appends one JSON line per optimizer step, in vicuna's metrics keys.
    With `autocast`, forward and loss run under torch.autocast("cpu", dtype=torch.bfloat16)."""
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
    with open(out, "w") as log:
        for step in range(steps):
            micro = samples[step * batch:(step + 1) * batch]
            start = time.perf_counter()
            ids = torch.tensor([s["input_ids"] for s in micro])
            labels = torch.tensor([s["labels"] for s in micro])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                loss = model(input_ids=ids, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
            seconds = time.perf_counter() - start
            log.write(json.dumps({"step": step + 1, "loss": loss.item(), "tokens": ids.numel(),
                                  "tokens_per_second": ids.numel() / seconds,
                                  "peak_memory_bytes": hwm_bytes()}) + "\n")
            log.flush()


def sampled(cmd, records, steps, log):
    """Runs `cmd`, sampling the PSS of its process tree every 10 ms as measure.py does (its own
    functions); returns the peak while training (until the last step's record is written) and
    the peak of the whole process (for vicuna, also its checkpoint and export at the end), in MB."""
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=err)
        training = whole = 0
        while proc.poll() is None:
            done = lines(records) >= steps  # before the sample: a sample before the record is training
            pss = sum(measure.memory(p)[0] for p in measure.tree(proc.pid))
            whole = max(whole, pss)
            if not done:
                training = max(training, pss)
            time.sleep(0.01)
    return proc.returncode, training / 2**20, whole / 2**20


def lines(path):
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except OSError:
        return 0


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


def run(side, binary, model, work, length, batch, steps, checkpointing, monitored, bf16=False):
    """Trains `steps` steps in a process of its own, its memory sampled when `monitored`; returns
    the median tokens/s after warm-up, peak PSS (monitored runs only) and VmHWM after the last step.
    `bf16`: vicuna --dtype bf16, transformers under bf16 autocast (fp32 otherwise, on both sides)."""
    data = subset(work, length, batch * steps)
    label = f"{side}-{batch}x{length}-{'ckpt' if checkpointing else 'nockpt'}-{'bf16' if bf16 else 'fp32'}"
    if side == "vicuna":
        out_dir = os.path.join(work, label)
        shutil.rmtree(out_dir, ignore_errors=True)
        cmd = [binary, "train", "--model", model, "--data", data, "--output-dir", out_dir,
               "--micro-batch-size", str(batch), "--gradient-accumulation", "1", "--max-steps", str(steps),
               "--max-length", str(length), "--gradient-checkpointing", str(checkpointing).lower(),
               "--group-by-length", "false", "--packing", "false", "--learning-rate", str(LR),
               "--warmup-ratio", "0", "--lr-schedule", "constant", "--weight-decay", "0",
               "--save-interval", "100000", "--keep-checkpoints", "1", "--seed", "0",
               "--dtype", "bf16" if bf16 else "fp32"]
        records = os.path.join(out_dir, "metrics.jsonl")
    else:
        records = os.path.join(work, label + ".jsonl")
        if os.path.exists(records):
            os.remove(records)
        cmd = [sys.executable, os.path.abspath(__file__), "--hf", model, data, str(batch), str(steps),
               str(int(checkpointing)), records, "bf16" if bf16 else "fp32"]
    log = os.path.join(work, label + ".log")
    if monitored:
        rc, training, whole = sampled(cmd, records, steps, log)
    else:
        with open(log, "w") as err:
            rc = subprocess.run(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=err).returncode
        training = whole = None
    if rc != 0:
        with open(log) as f:
            sys.exit(f"{label} failed ({rc}):\n{f.read()[-4000:]}")
    with open(records) as f:
        steps_done = [json.loads(line) for line in f]
    if side == "vicuna":  # its checkpoint and exported model (about 1 GB) are not needed
        shutil.rmtree(os.path.join(out_dir, "checkpoints"), ignore_errors=True)
        shutil.rmtree(os.path.join(out_dir, "final"), ignore_errors=True)
    assert len(steps_done) == steps and all(r["tokens"] == batch * length for r in steps_done), label
    timed = steps_done[WARMUP:] if len(steps_done) > WARMUP else steps_done
    return {
        "tokens_per_second": statistics.median(r["tokens_per_second"] for r in timed),
        "pss_mb": training,
        "whole_mb": whole,
        "hwm_mb": steps_done[-1]["peak_memory_bytes"] / 2**20,
        "loss": (steps_done[0]["loss"], steps_done[-1]["loss"]),
    }


def matmul_peak_gflops(n=2048, dtype=torch.float32):
    """Best matmul rate in `dtype` over 10 timed runs after 3 warm-up runs."""
    torch.set_num_threads(THREADS)
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    c = torch.empty(n, n, dtype=dtype)
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
        model, data, batch, steps, ckpt, out, dtype = sys.argv[2:9]
        hf_worker(model, data, int(batch), int(steps), ckpt == "1", out, autocast=dtype == "bf16")
        return
    binary, model, work = sys.argv[1:4]
    print(measure.cpu_summary())
    amx = measure.has_amx()
    peak = matmul_peak_gflops()
    peak16 = matmul_peak_gflops(dtype=torch.bfloat16)
    fpt, n = flops_per_token(model, LENGTH)
    print(f"model: {model}, {n / 1e6:.1f}M parameters in matmuls (all but the input embedding); "
          f"{THREADS} threads on {os.cpu_count()} cores")
    print(f"matmul peak (torch, n=2048, {THREADS} threads): fp32 {peak:.1f} GFLOP/s, bf16 {peak16:.1f} GFLOP/s")
    print(f"model FLOPs per token at {LENGTH}: 6N + 12LTd = {fpt / 1e6:.0f} MFLOP "
          f"(attention {100 * (fpt - 6 * n) / fpt:.0f}%; recomputation not counted)")
    with open(subset(work, LENGTH, BATCH * STEPS)) as f:
        labels = [json.loads(line)["labels"] for line in f]
    trained = sum(l != -100 for row in labels for l in row) / sum(len(row) for row in labels)
    print(f"data: {len(labels)} samples of {LENGTH} tokens, {100 * trained:.0f}% of positions trained (assistant "
          f"tokens); vicuna runs the LM head on those rows only, transformers on all (the MFU counts all for both)")
    mfu = lambda tps: 100 * tps * fpt / (peak * 1e9)
    if "fp32" in SECTIONS:
        fp32_sections(binary, model, work, mfu)
    if "long" in SECTIONS:
        long_section(binary, model, work)
    if "bf16" in SECTIONS:
        bf16_section(binary, model, work, fpt, peak, peak16, amx)


def fp32_sections(binary, model, work, mfu):
    speed, mem = {}, {}
    for ckpt in (False, True):
        for side in ("vicuna", "transformers"):
            speed[side, ckpt] = run(side, binary, model, work, LENGTH, BATCH, STEPS, ckpt, monitored=False)
    for ckpt in (False, True):
        for side in ("vicuna", "transformers"):
            mem[side, ckpt] = run(side, binary, model, work, LENGTH, BATCH, MEM_STEPS, ckpt, monitored=True)
    on_off = lambda ckpt: "on" if ckpt else "off"
    loss = lambda r: f"{r['loss'][0]:.3f}->{r['loss'][1]:.3f}"
    timed = f"steps {WARMUP + 1}-{STEPS}" if STEPS > WARMUP else "all steps"
    print(f"\n{BATCH} x {LENGTH} tokens, fp32: tokens/s = median of {timed} of a {STEPS}-step run "
          f"(speed = vicuna / transformers)")
    print(f"{'checkpointing':<14}{'vicuna tok/s':>13}{'hf tok/s':>10}{'speed':>8}{'MFU vicuna':>12}{'MFU hf':>8}"
          f"{'loss vicuna':>16}{'loss hf':>16}")
    for ckpt in (False, True):
        v, h = speed["vicuna", ckpt], speed["transformers", ckpt]
        print(f"{on_off(ckpt):<14}{v['tokens_per_second']:>13.0f}{h['tokens_per_second']:>10.0f}"
              f"{v['tokens_per_second'] / h['tokens_per_second']:>7.2f}x"
              f"{mfu(v['tokens_per_second']):>11.1f}%{mfu(h['tokens_per_second']):>7.1f}%"
              f"{loss(v):>16}{loss(h):>16}")
    print(f"\n{BATCH} x {LENGTH} tokens, fp32: peak memory in MB while training ({MEM_STEPS}-step runs of their own): "
          f"PSS of the process tree sampled as measure.py does, and VmHWM after the last step "
          f"(memory = vicuna / transformers); last column: vicuna's PSS including its checkpoint and export at the end")
    print(f"{'checkpointing':<14}{'vicuna PSS':>11}{'hf PSS':>8}{'memory':>8}{'vicuna HWM':>12}{'hf HWM':>8}{'memory':>8}"
          f"{'vicuna PSS with save':>22}")
    for ckpt in (False, True):
        v, h = mem["vicuna", ckpt], mem["transformers", ckpt]
        print(f"{on_off(ckpt):<14}{v['pss_mb']:>11.0f}{h['pss_mb']:>8.0f}{v['pss_mb'] / h['pss_mb']:>7.2f}x"
              f"{v['hwm_mb']:>12.0f}{h['hwm_mb']:>8.0f}{v['hwm_mb'] / h['hwm_mb']:>7.2f}x{v['whole_mb']:>22.0f}")



def long_section(binary, model, work):
    print(f"\n{LONG_BATCH} x {LONG} tokens, fp32, {LONG_STEPS}-step runs: peak memory while training with "
          f"checkpointing / without (PSS sampled as measure.py does; VmHWM in brackets)")
    for side in ("vicuna", "transformers"):
        on = run(side, binary, model, work, LONG, LONG_BATCH, LONG_STEPS, True, monitored=True)
        off = run(side, binary, model, work, LONG, LONG_BATCH, LONG_STEPS, False, monitored=True)
        extra = (f"; including the checkpoint and export at the end {on['whole_mb']:.0f} and {off['whole_mb']:.0f} MB"
                 if side == "vicuna" else "")
        print(f"{side:>12}: checkpointing {on['pss_mb']:.0f} MB ({on['hwm_mb']:.0f}), without {off['pss_mb']:.0f} MB "
              f"({off['hwm_mb']:.0f}), ratio {on['pss_mb'] / off['pss_mb']:.2f} ({on['hwm_mb'] / off['hwm_mb']:.2f})"
              f"{extra}")


def bf16_section(binary, model, work, fpt, peak, peak16, amx):
    """Section 4 (see the module docstring)."""
    runs = {}
    for _ in range(REPEATS):
        for side in ("vicuna", "transformers"):
            for bf16 in (False, True):
                r = run(side, binary, model, work, LENGTH, BATCH, STEPS, False, monitored=False, bf16=bf16)
                runs.setdefault((side, bf16), []).append(r["tokens_per_second"])
    med = {k: statistics.median(v) for k, v in runs.items()}
    spread = lambda k: f"{min(runs[k]):.0f}-{max(runs[k]):.0f}"
    print(f"\n{BATCH} x {LENGTH} tokens, no checkpointing, bf16: vicuna --dtype bf16, transformers under bf16 "
          f"autocast; tokens/s = median of {REPEATS} runs (range), each the median of its steps after {WARMUP}")
    print(f"{'':<26}{'tok/s':>8}{'range':>12}{'MFU':>8}  (fp32 rows against the fp32 peak, bf16 rows the bf16 peak)")
    for side in ("vicuna", "transformers"):
        for bf16 in (False, True):
            name = f"{side} {'bf16' if bf16 else 'fp32'}{' autocast' if bf16 and side == 'transformers' else ''}"
            p = peak16 if bf16 else peak
            print(f"{name:<26}{med[side, bf16]:>8.0f}{spread((side, bf16)):>12}{100 * med[side, bf16] * fpt / (p * 1e9):>7.1f}%")
    ours, theirs = med["vicuna", True] / med["vicuna", False], med["vicuna", True] / med["transformers", True]
    m32 = run("vicuna", binary, model, work, LENGTH, BATCH, MEM_STEPS, False, monitored=True)
    m16 = run("vicuna", binary, model, work, LENGTH, BATCH, MEM_STEPS, False, monitored=True, bf16=True)
    print(f"vicuna bf16 / vicuna fp32: {ours:.2f}x; vicuna bf16 / transformers bf16 autocast: {theirs:.2f}x")
    print(f"peak memory while training ({MEM_STEPS}-step runs, PSS; VmHWM): vicuna fp32 {m32['pss_mb']:.0f} MB "
          f"({m32['hwm_mb']:.0f}), bf16 {m16['pss_mb']:.0f} MB ({m16['hwm_mb']:.0f})")
    if not amx:
        print("targets: none on this CPU (no AMX: bf16 matmuls have no tile units here); "
              "on an AMX CPU: >= 2.5x vicuna fp32, >= 2x transformers autocast, memory <= fp32")
    else:
        verdict = lambda ok: "met" if ok else "NOT met"
        print(f"targets (AMX): 2.5x vicuna fp32 {verdict(ours >= 2.5)}; 2x transformers autocast "
              f"{verdict(theirs >= 2)}; memory <= fp32 {verdict(m16['pss_mb'] <= m32['pss_mb'])}")


if __name__ == "__main__":
    main()
