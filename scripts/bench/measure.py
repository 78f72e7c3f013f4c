#!/usr/bin/env python3
"""Runs a command and prints its wall time and peak memory as one JSON line.

Usage: measure.py LABEL -- CMD [ARG...]
Peak memory is the largest sum of PSS (proportional set size) over the command's whole process
tree, sampled every 10 ms from /proc: workers forked by a process pool are counted, and pages
they share are counted once. The largest single-process RSS is printed too.
Other benchmarks import its functions: `tree`, `memory` and `cpu_summary` (the CPU line they print)."""
import json
import os
import subprocess
import sys
import time


def tree(root):
    children = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        children.setdefault(ppid, []).append(int(pid))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def memory(pid):
    pss = rss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1]) * 1024
    except OSError:
        pass
    return pss, rss


def cpu_info():
    """The CPU model, its number of logical CPUs and its flags, from /proc/cpuinfo."""
    model, flags, cpus = "unknown", set(), 0
    with open("/proc/cpuinfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "processor":
                cpus += 1
            elif key == "model name" and model == "unknown":
                model = value.strip()
            elif key == "flags" and not flags:
                flags = set(value.split())
    return model, cpus, flags


def has_amx():
    """Whether the CPU has AMX with bf16, where bf16 matmuls outrun fp32 (the bf16 targets apply)."""
    return "amx_bf16" in cpu_info()[2]


def cpu_summary():
    """The CPU model, its logical CPUs, and the instruction sets that decide CPU training speed
    (from /proc/cpuinfo): AVX2/FMA, AVX-512 (and its bf16 and VNNI extensions), AMX."""
    model, cpus, flags = cpu_info()
    wanted = ["avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8"]
    have = [f for f in wanted if f in flags]
    missing = [f for f in wanted if f not in flags]
    return (f"CPU: {model}, {cpus} logical CPUs; has {' '.join(have) or 'none of'}"
            f"{'; lacks ' + ' '.join(missing) if missing else ''}")


def main():
    label, cmd = sys.argv[1], sys.argv[sys.argv.index("--") + 1:]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak_pss = peak_rss = 0
    while proc.poll() is None:
        sample = [memory(p) for p in tree(proc.pid)]
        peak_pss = max(peak_pss, sum(s[0] for s in sample))
        peak_rss = max([peak_rss] + [s[1] for s in sample])
        time.sleep(0.01)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace")
    if proc.returncode != 0:
        sys.exit(f"{label} failed ({proc.returncode}):\n{err}")
    print(json.dumps({"label": label, "wall_s": round(wall, 3), "peak_pss_mb": round(peak_pss / 2**20, 1),
                      "peak_rss_mb": round(peak_rss / 2**20, 1)}))


if __name__ == "__main__":
    main()
