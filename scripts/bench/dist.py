#!/usr/bin/env python3
"""Data-parallel training on CPU (c10d over Gloo): what each shard mode sends, how fast two
processes train against one, and how much memory a rank keeps.

Usage: dist.py VICUNA_BINARY MODEL_DIR WORK_DIR      (WORK_DIR holds encoded_512.jsonl from
                                                      `prep encode`, as train.sh makes it)
       dist.py --matmul THREADS SECONDS              (one matmul-rate worker; the first form starts it)
       dist.py --collectives RANK PORT MODEL_DIR     (one rank of the collectives timing; likewise)

Every run trains the same model on the same samples of exactly 512 tokens (full, unpadded,
equal micro-batches, so the ranks stay in step): global batch GLOBAL_BATCH samples per optimizer
step (micro-batch MICRO), fp32, gradient checkpointing on (the default), lr constant.

1. Bytes per optimizer step. For P parameters in units (the embedding; each decoder layer; the
   final norm with the LM head), each unit padded to a multiple of N (slice = ceil(numel / N),
   padded = slice * N; N = 1 for `none`), model dtype size d, M micro-step slots per rank
   (ceil(ceil(global batch / N) / micro batch)), the collectives of one step are, in the order the
   loop runs them:
     none:    all-reduce of the padded gradient in fp32, 4P, once (at the last slot)
     grad-op: reduce-scatter with input 4P, once; after the optimizer, all-gather of the updated
              parameters, P d
     full:    per slot, each layer all-gathered twice (forward and recompute under checkpointing),
              the outer units once (held for the slot), P_layers 2d + P_outer d, and a
              reduce-scatter of 4P; nothing after the optimizer
   plus scalars: a stop flag all-reduced after each slot (8 M), the loss and token count (16),
   the gradient norm (8, grad-op and full), the largest peak memory (8), the save timer broadcast
   (8) and the stop flag once more after the step (8). `comm_bytes` in metrics.jsonl counts every
   byte handed to a collective since the previous step's record (so in steady state: one whole
   step); the table prints the formula's prediction, which must equal the measurement exactly.
2. Speed: 1 process with 2 threads against 2 processes with 1 thread each (`--nproc-per-node 2`),
   each shard mode, and two independent 1-process runs side by side (1 thread each, each on half
   the global batch, no collectives: what 2 x 1 thread could do if communication cost nothing).
   Tokens/s = tokens of the steps after the first WARMUP / their wall time (from metrics.jsonl's
   elapsed time, so everything between steps counts), RUNS runs of each configuration,
   interleaved so that a disturbance hits all of them; the median and the range are printed. The
   target: 2 processes reach at least 90% of 1 process's tokens/s. Where the time goes: the
   collectives of one step of each mode, unit by unit in the trainer's sizes, timed alone (2
   processes of 1 thread, torch.distributed over Gloo: the same c10d ProcessGroupGloo the trainer's
   shim drives, so the same algorithms), next to each mode's extra step time over the independent
   runs (the step time without any communication). MFU = tokens/s x model FLOPs
   per token (train.py's 6N + 12LTd, recomputation not counted) / a fp32 matmul peak measured in
   this run: 2 threads in one process for the 1-process run, two 1-thread processes at once
   (their sum) for the rest.
3. Peak memory per rank in those runs: VmHWM of the largest rank after the last step (metrics),
   and each rank's peak at exit (its own report, which includes the final export: under `full`
   every rank gathers the whole model for it).
4. Memory with `--shard full` for N = 1, 2, 4 (1 process runs as `none`: it holds everything):
   per rank, one micro-step slot of one sample of MEM_LENGTH tokens per step (micro-batch 1,
   global batch N), so activations are small and equal. Each rank's "kept between steps" figure
   (fp32 masters, AdamW moments and gradient of its shard, plus resident parameters), its peak RSS
   sampled every 10 ms as measure.py does until the last step's record is written, the kernel's
   VmHWM, and the PSS of the whole process tree. One more run at N = 2 with 4 slots per step
   shows how the peak depends on the micro-steps of a step."""
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import measure  # noqa: E402  (/proc sampling, the CPU line)
import train  # noqa: E402  (its sample subsets and FLOPs per token)

STEPS = int(os.environ.get("STEPS", "4"))
WARMUP = int(os.environ.get("WARMUP", "1"))
RUNS = int(os.environ.get("RUNS", "3"))
MICRO = int(os.environ.get("MICRO", "2"))
GLOBAL_BATCH = int(os.environ.get("GLOBAL_BATCH", "4"))
MEM_STEPS = int(os.environ.get("MEM_STEPS", "2"))
MEM_LENGTH = int(os.environ.get("MEM_LENGTH", "128"))
LENGTH = 512
MODES = ("none", "grad-op", "full")
TARGET = 0.90


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_args(binary, model, data, out, micro, accumulation, steps, length):
    return [binary, "train", "--model", model, "--data", data, "--output-dir", out,
            "--micro-batch-size", str(micro), "--gradient-accumulation", str(accumulation),
            "--max-steps", str(steps), "--max-length", str(length), "--group-by-length", "false",
            "--packing", "false", "--learning-rate", "1e-5", "--warmup-ratio", "0",
            "--lr-schedule", "constant", "--weight-decay", "0", "--save-interval", "100000",
            "--keep-checkpoints", "1", "--seed", "0"]


def threads_env(n):
    return dict(os.environ, OMP_NUM_THREADS=str(n), MKL_NUM_THREADS=str(n))


def records(out):
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return [r for r in map(json.loads, f) if "step" in r and "loss" in r]


def finished(proc, log, label):
    if proc.wait() != 0:
        with open(log) as f:
            sys.exit(f"{label} failed ({proc.returncode}):\n{f.read()[-4000:]}")


def throughput(steps):
    """Tokens/s of the steps after the warm-up, over their wall time (rank 0's clock)."""
    timed = steps[WARMUP:]
    start = steps[WARMUP - 1]["elapsed_seconds"] if WARMUP > 0 else 0.0
    return sum(r["tokens"] for r in timed) / (timed[-1]["elapsed_seconds"] - start)


def rank_reports(log):
    """Each rank's end-of-run line: {rank: (peak MB, kept between steps MB)}."""
    out = {}
    with open(log) as f:
        for line in f:
            if "parameters and optimizer state kept between steps" in line:
                words = line.replace(",", "").split()
                r = words.index("rank", 1) if words[0].startswith("[") else 0
                out[int(words[r + 1].rstrip(":"))] = (float(words[words.index("memory") + 1]),
                                                     float(words[words.index("steps") + 1]))
    return out


def cleanup(out):
    shutil.rmtree(os.path.join(out, "checkpoints"), ignore_errors=True)
    shutil.rmtree(os.path.join(out, "final"), ignore_errors=True)


def speed_run(config, binary, model, data, work, run):
    """One run of `config` ("1x2", "indep" or a shard mode with 2 processes); its measurements."""
    label = f"dist-{config}-{run}"
    out = os.path.join(work, label)
    log = out + ".log"
    if config == "indep":
        # Two single-process runs at once, each on half the global batch (every other sample).
        halves, procs = [], []
        for half in range(2):
            half_data = os.path.join(work, f"dist_half{half}_{os.path.basename(data)}")
            if not os.path.exists(half_data):
                with open(data) as f:
                    lines = f.readlines()[half::2]
                with open(half_data, "w") as f:
                    f.writelines(lines)
            o = f"{out}-{half}"
            shutil.rmtree(o, ignore_errors=True)
            err = open(f"{o}.log", "w")
            cmd = train_args(binary, model, half_data, o, MICRO, max(1, GLOBAL_BATCH // 2 // MICRO), STEPS, LENGTH)
            procs.append((subprocess.Popen(cmd, env=threads_env(1), stdout=subprocess.DEVNULL, stderr=err), o))
        for p, o in procs:
            finished(p, f"{o}.log", label)
            halves.append(records(o))
            cleanup(o)
        return {"tps": sum(throughput(h) for h in halves),
                "hwm": max(h[-1]["peak_memory_bytes"] for h in halves) / 1e6}
    shutil.rmtree(out, ignore_errors=True)
    if config == "1x2":
        cmd = train_args(binary, model, data, out, MICRO, GLOBAL_BATCH // MICRO, STEPS, LENGTH)
        env = threads_env(2)
    else:
        cmd = train_args(binary, model, data, out, MICRO, GLOBAL_BATCH // MICRO, STEPS, LENGTH) + [
            "--nproc-per-node", "2", "--shard", config, "--master-port", str(free_port())]
        env = threads_env(1)
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        finished(proc, log, label)
    steps = records(out)
    cleanup(out)
    assert len(steps) == STEPS and all(r["tokens"] == GLOBAL_BATCH * LENGTH for r in steps), label
    return {"tps": throughput(steps), "hwm": steps[-1]["peak_memory_bytes"] / 1e6,
            "comm": [r["comm_bytes"] for r in steps], "ranks": rank_reports(log)}


def units(model):
    """Elements per sharding unit, from the safetensors headers: [("embed", n), (layer i, n)...,
    ("head", n)] as the trainer groups them (everything before the first layer, each layer, the rest)."""
    index = os.path.join(model, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
    numel = {}
    for name in files:
        with open(os.path.join(model, name), "rb") as f:
            header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
        for key, t in header.items():
            if key != "__metadata__":
                n = 1
                for s in t["shape"]:
                    n *= s
                numel[key] = n
    layers, embed, head = {}, 0, 0
    for key, n in numel.items():
        if key.startswith("model.layers."):
            i = int(key.split(".")[2])
            layers[i] = layers.get(i, 0) + n
        elif "embed_tokens" in key:
            embed += n
        else:
            head += n
    return [("embed", embed)] + [(i, layers[i]) for i in sorted(layers)] + [("head", head)]


def predicted(mode, unit_list, n, micro, global_batch, d=4):
    """(bytes of the loop up to the loss all-reduce, bytes of the whole step, M) for one rank, as the
    module doc says."""
    if n == 1:
        return 0, 0, -(-global_batch // micro)
    owners = 1 if mode == "none" else n
    pad = lambda numel: -(-numel // owners) * owners
    p = sum(pad(u) for _, u in unit_list)
    layers = sum(pad(u) for k, u in unit_list if isinstance(k, int))
    outer = p - layers
    m = -(-(-(-global_batch // n)) // micro)
    stop, loss, norm, peak, timer = 8, 16, 8, 8, 8
    if mode == "none":
        window, after = 4 * p + stop * m + loss, peak + timer + stop
    elif mode == "grad-op":
        window, after = 4 * p + stop * m + loss, norm + d * p + peak + timer + stop
    else:
        window, after = m * (d * (2 * layers + outer) + 4 * p + stop) + loss, norm + peak + timer + stop
    return window, window + after, m


def matmul_worker(threads, seconds, n=2048):
    """Waits for "go" on stdin, then multiplies fp32 n x n matrices for `seconds`; prints the
    median rate of the runs in the middle of that window (GFLOP/s)."""
    import torch
    torch.set_num_threads(threads)
    a, b, c = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
    torch.mm(a, b, out=c)
    print("ready", flush=True)
    sys.stdin.readline()
    rates, start = [], time.perf_counter()
    while (now := time.perf_counter()) - start < seconds:
        torch.mm(a, b, out=c)
        rates.append((now - start, 2 * n**3 / (time.perf_counter() - now) / 1e9))
    middle = [r for t, r in rates if seconds * 0.15 <= t <= seconds * 0.85] or [r for _, r in rates]
    print(statistics.median(middle), flush=True)


def matmul_peak(processes, threads, seconds=4.0):
    """Summed fp32 matmul rate of `processes` workers of `threads` threads running at once."""
    procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "--matmul", str(threads), str(seconds)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=threads_env(threads))
             for _ in range(processes)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    return sum(float(p.communicate()[0].strip()) for p in procs)


def collectives_worker(rank, port, model, repeats=3):
    """One of 2 ranks: times the collectives of one optimizer step of each mode (M = 1 slot), unit
    by unit as the trainer issues them, nothing else running; rank 0 prints {mode: seconds}."""
    import torch
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
    scatter = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor
    sizes = [(k, -(-numel // 2)) for k, numel in units(model)]  # (unit, slice) for N = 2
    full = {k: torch.zeros(2 * s) for k, s in sizes}
    part = {k: torch.zeros(s) for k, s in sizes}
    layers = [k for k, _ in sizes if isinstance(k, int)]
    outer = [k for k, _ in sizes if not isinstance(k, int)]
    steps = {
        "none": lambda: [dist.all_reduce(full[k]) for k in reversed(full)],
        "grad-op": lambda: ([scatter(part[k], full[k]) for k in reversed(full)]
                            + [gather(full[k], part[k]) for k in full]),
        "full": lambda: ([gather(full[k], part[k]) for k in outer + layers + layers[::-1]]
                         + [scatter(part[k], full[k]) for k in reversed(full)]),
    }
    out = {}
    for mode, step in steps.items():
        step()  # warm-up: connections, buffers
        times = []
        for _ in range(repeats):
            dist.barrier()
            t = time.perf_counter()
            step()
            dist.barrier()
            times.append(time.perf_counter() - t)
        out[mode] = statistics.median(times)
    if rank == 0:
        print(json.dumps(out), flush=True)
    dist.destroy_process_group()


def collective_seconds(model):
    port = str(free_port())
    cmd = lambda r: [sys.executable, "-W", "ignore", os.path.abspath(__file__), "--collectives", str(r), port, model]
    other = subprocess.Popen(cmd(1), env=threads_env(1), stdout=subprocess.DEVNULL)
    result = subprocess.run(cmd(0), env=threads_env(1), stdout=subprocess.PIPE, text=True, check=True)
    other.wait()
    return json.loads(result.stdout)


def memory_run(binary, model, data, work, n, slots=1):
    """A `--shard full` run on n processes (one process: plain), `slots` micro-steps of one sample
    per rank per step; per-rank peak RSS and the tree's peak PSS while training (sampled until the
    last step's record is written), VmHWM of the largest rank, and the ranks' own reports."""
    label = f"dist-mem-{n}x{slots}"
    out = os.path.join(work, label)
    shutil.rmtree(out, ignore_errors=True)
    cmd = train_args(binary, model, data, out, 1, n * slots, MEM_STEPS, MEM_LENGTH)
    if n > 1:
        cmd += ["--nproc-per-node", str(n), "--shard", "full", "--master-port", str(free_port())]
    metrics_path = os.path.join(out, "metrics.jsonl")
    rss, pss = {}, 0
    with open(out + ".log", "w") as err:
        proc = subprocess.Popen(cmd, env=threads_env(1) if n > 1 else threads_env(2),
                                stdout=subprocess.DEVNULL, stderr=err)
        while proc.poll() is None:
            if train.lines(metrics_path) >= MEM_STEPS:
                break
            pids = measure.tree(proc.pid)
            sample = {p: measure.memory(p) for p in pids}
            pss = max(pss, sum(s[0] for s in sample.values()))
            for p in pids if n == 1 else pids[1:]:
                rss[p] = max(rss.get(p, 0), sample[p][1])
            time.sleep(0.01)
        finished(proc, out + ".log", label)
    steps = records(out)
    cleanup(out)
    ranks = rank_reports(out + ".log")
    return {"rss": sorted(rss.values(), reverse=True)[:n], "pss": pss / 1e6,
            "hwm": steps[-1]["peak_memory_bytes"] / 1e6, "ranks": ranks, "comm": steps[-1]["comm_bytes"]}


def spread(values, fmt="{:.0f}"):
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main():
    if sys.argv[1] == "--matmul":
        matmul_worker(int(sys.argv[2]), float(sys.argv[3]))
        return
    if sys.argv[1] == "--collectives":
        collectives_worker(int(sys.argv[2]), sys.argv[3], sys.argv[4])
        return
    binary, model, work = sys.argv[1:4]
    import torch
    unit_list = units(model)
    p = sum(u for _, u in unit_list)
    print(measure.cpu_summary())
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}; "
          f"load average at start {loadavg()} (other processes on these cores disturb the numbers)")
    peak_2t = matmul_peak(1, 2)
    peak_2x1 = matmul_peak(2, 1)
    fpt, _ = train.flops_per_token(model, LENGTH)
    comm_seconds = collective_seconds(model)
    print(f"model: {model}, {p:,} parameters ({p * 4 / 1e6:.1f} MB fp32) in {len(unit_list)} units "
          f"(embedding, {len(unit_list) - 2} layers, final norm + LM head)")
    print(f"fp32 matmul peak (n=2048, median over 4 s): 1 process x 2 threads {peak_2t:.1f} GFLOP/s, "
          f"2 processes x 1 thread at once {peak_2x1:.1f} GFLOP/s (sum)")
    print(f"model FLOPs per token at {LENGTH}: {fpt / 1e6:.0f} MFLOP (train.py's 6N + 12LTd)")
    data = train.subset(work, LENGTH, GLOBAL_BATCH * STEPS)
    print(f"runs: {GLOBAL_BATCH} x {LENGTH} tokens per optimizer step (micro-batch {MICRO}), fp32, gradient "
          f"checkpointing, {STEPS} steps ({WARMUP} warm-up), {RUNS} runs of each configuration, interleaved")

    configs = ["1x2", "indep", *MODES]
    results = {c: [] for c in configs}
    for run in range(RUNS):
        for c in configs:
            results[c].append(speed_run(c, binary, model, data, work, run))
            print(f"  run {run + 1}/{RUNS} {c}: {results[c][-1]['tps']:.0f} tokens/s (load {loadavg()})",
                  file=sys.stderr, flush=True)

    print(f"\n1. bytes handed to collectives per optimizer step by rank 0, N = 2 ranks (d = 4, fp32 model)")
    print("   measured: comm_bytes of metrics.jsonl (steady steps); predicted: the formula of the module doc;")
    print("   of which after the optimizer: the all-gather of updated parameters (grad-op) and the scalars")
    print(f"{'mode':<9}{'M':>3}{'measured':>15}{'predicted':>15}{'':>8}{'after the loss':>16}")
    for mode in MODES:
        window, step, m = predicted(mode, unit_list, 2, MICRO, GLOBAL_BATCH)
        comm = {c for r in results[mode] for c in r["comm"][WARMUP:]}
        measured = comm.pop() if len(comm) == 1 else None
        match = "equal" if measured == step else f"DIFFER (steady steps: {sorted(comm)})"
        print(f"{mode:<9}{m:>3}{measured if measured is not None else -1:>15,}{step:>15,}{match:>8}{step - window:>16,}")

    t1 = [r["tps"] for r in results["1x2"]]
    print(f"\n2. tokens/s, median (range) over {RUNS} runs; ratio = against the 1-process run of the same round; "
          f"target: 2 processes reach {TARGET:.0%} of 1 process")
    print(f"{'configuration':<38}{'tokens/s':>18}{'ratio':>18}{'MFU':>7}  target")
    print(f"{'1 process x 2 threads':<38}{spread(t1):>18}{'1.00':>18}"
          f"{100 * statistics.median(t1) * fpt / (peak_2t * 1e9):>6.1f}%")
    for c in ["indep", *MODES]:
        tps = [r["tps"] for r in results[c]]
        ratios = [a / b for a, b in zip(tps, t1)]
        name = ("2 x 1 thread, independent (no comm.)" if c == "indep" else f"2 processes x 1 thread, --shard {c}")
        verdict = "" if c == "indep" else ("meets" if statistics.median(ratios) >= TARGET else "MISSES")
        print(f"{name:<38}{spread(tps):>18}{spread(ratios, '{:.2f}'):>18}"
              f"{100 * statistics.median(tps) * fpt / (peak_2x1 * 1e9):>6.1f}%  {verdict}")

    step_tokens = GLOBAL_BATCH * LENGTH
    ideal = step_tokens / statistics.median(r["tps"] for r in results["indep"])
    print(f"\n   where the time goes, seconds per step (median): 1 process {step_tokens / statistics.median(t1):.2f}; "
          f"2 independent processes (no communication) {ideal:.2f}")
    print(f"{'   2 processes, --shard':<26}{'step':>8}{'extra':>8}{'collectives alone':>19}")
    for mode in MODES:
        step = step_tokens / statistics.median(r["tps"] for r in results[mode])
        print(f"{'   ' + mode:<26}{step:>8.2f}{step - ideal:>8.2f}{comm_seconds[mode]:>19.2f}")

    print(f"\n3. peak memory per rank in those runs, MB (median over runs): VmHWM of the largest rank after the last "
          f"step; each rank's own report at exit (includes the final export); kept between steps")
    print(f"{'configuration':<38}{'after last step':>16}{'at exit r0/r1':>16}{'kept':>8}")
    print(f"{'1 process x 2 threads':<38}{statistics.median(r['hwm'] for r in results['1x2']):>16.0f}"
          f"{'-':>16}{16 * p / 1e6:>8.0f}")
    for mode in MODES:
        rs = results[mode]
        at_exit = "/".join(f"{statistics.median(r['ranks'][k][0] for r in rs):.0f}" for k in (0, 1))
        print(f"{'2 processes, --shard ' + mode:<38}{statistics.median(r['hwm'] for r in rs):>16.0f}{at_exit:>16}"
              f"{rs[0]['ranks'][0][1]:>8.0f}")

    print(f"\n4. memory per rank with --shard full (1 process: everything on one rank), MB: one sample of "
          f"{MEM_LENGTH} tokens per rank per micro-step, {MEM_STEPS} steps; peak RSS sampled until the last step's "
          f"record; VmHWM of the largest rank; PSS of the whole process tree")
    print(f"{'N':>2}{'slots':>6}{'kept':>8}{'x N':>8}{'peak RSS per rank':>20}{'VmHWM':>8}{'peak - kept':>13}"
          f"{'tree PSS':>10}")
    mem = {}
    for n, slots in ((1, 1), (2, 1), (4, 1), (2, 4)):
        r = mem[n, slots] = memory_run(binary, model, data, work, n, slots)
        kept = r["kept"] = r["ranks"][0][1] if r["ranks"] else 16 * p / 1e6  # one process prints no report
        print(f"{n:>2}{slots:>6}{kept:>8.0f}{kept * n:>8.0f}{'/'.join(f'{x / 1e6:.0f}' for x in r['rss']):>20}"
              f"{r['hwm']:>8.0f}{r['hwm'] - kept:>13.0f}{r['pss']:>10.0f}")
    peak = lambda n, slots: max(mem[n, slots]["rss"]) / 1e6
    print(f"   kept between steps falls as 1/N (kept x N is constant). Peak RSS: N = 1 -> 2 fell "
          f"{peak(1, 1) - peak(2, 1):.0f} MB (kept fell {mem[1, 1]['kept'] - mem[2, 1]['kept']:.0f}), "
          f"N = 2 -> 4 fell {peak(2, 1) - peak(4, 1):.0f} MB (kept fell {mem[2, 1]['kept'] - mem[4, 1]['kept']:.0f}); "
          f"at N = 2, 4 slots per step instead of 1 add {(peak(2, 4) - peak(2, 1)) / 3:.0f} MB per slot")
    print(f"\nload average at the end {loadavg()}")


if __name__ == "__main__":
    main()
