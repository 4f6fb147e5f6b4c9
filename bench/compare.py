"""Driver of bench/compare.sh: alternates rediffuse (a `rediffuse-bench serve` child
process) and PyTorch (in this process) repetition by repetition, and reports medians.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

import torch

from torch_ref import Case

CASES = [
    "conv3x3_fwd",
    "conv3x3_bwd",
    "groupnorm_fwd",
    "groupnorm_bwd",
    "unet_forward",
    "unet_train_step",
    "digits_forward",
    "digits_train_step",
    "mnist_forward",
    "mnist_train_step",
]


class Rust:
    def __init__(self, binary, threads):
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
        self.p = subprocess.Popen(
            [binary, "serve", "--threads", str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )

    def call(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        reply = self.p.stdout.readline()
        if not reply:
            raise SystemExit(f"rediffuse-bench exited while answering `{line}`")
        out = json.loads(reply)
        if "error" in out:
            raise SystemExit(out["error"])
        return out

    def close(self):
        self.call_quit()

    def call_quit(self):
        try:
            self.p.stdin.write("quit\n")
            self.p.stdin.flush()
        except BrokenPipeError:
            pass
        self.p.wait()


def measure(rust, name, threads, reps, warmup):
    torch.set_num_threads(threads)
    case = Case(name, rust.call(f"describe {name}"))
    rust.call(f"run {name} {warmup}")
    for _ in range(warmup):
        case.run()
    r_ms, t_ms = [], []
    for _ in range(reps):
        r_ms += rust.call(f"run {name} 1")["ms"]
        t_ms.append(case.run())
    rust.call(f"drop {name}")
    r, t = statistics.median(r_ms), statistics.median(t_ms)
    return {"name": name, "rediffuse_ms": round(r, 3), "torch_ms": round(t, 3), "ratio": round(r / t, 3)}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", required=True, help="path of the rediffuse-bench binary")
    ap.add_argument("--json", help="write the rows to this file")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=11)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--cases", nargs="*", default=CASES, choices=CASES)
    ap.add_argument("--no-scaling", action="store_true", help="skip the 1-thread training-step rows")
    args = ap.parse_args()
    if args.reps < 1 or args.threads < 1:
        raise SystemExit("--reps and --threads must be positive")

    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.reps} alternating "
          f"repetitions after {args.warmup} warm-up, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '')}, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    rust = Rust(args.bin, args.threads)
    try:
        for name in args.cases:
            row = measure(rust, name, args.threads, args.reps, args.warmup)
            rows.append(row)
            print(f"  {row['name']:<26} {row['rediffuse_ms']:>10.2f} {row['torch_ms']:>10.2f} "
                  f"{row['ratio']:>7.2f}", flush=True)
    finally:
        rust.close()
    if not args.no_scaling and args.threads > 1 and "unet_train_step" in args.cases:
        rust1 = Rust(args.bin, 1)
        try:
            row = measure(rust1, "unet_train_step", 1, max(3, args.reps // 2), 1)
        finally:
            rust1.close()
        row["name"] = "unet_train_step_1thread"
        rows.append(row)

    print()
    print(f"{'case':<26} {'rediffuse ms':>13} {'torch ms':>10} {'ratio':>7}")
    for row in rows:
        print(f"{row['name']:<26} {row['rediffuse_ms']:>13.2f} {row['torch_ms']:>10.2f} {row['ratio']:>7.2f}")
    by = {r["name"]: r for r in rows}
    if "unet_train_step_1thread" in by and "unet_train_step" in by:
        one, many = by["unet_train_step_1thread"], by["unet_train_step"]
        print(f"\nthread scaling of the training step (1 → {args.threads} threads): "
              f"rediffuse {one['rediffuse_ms'] / many['rediffuse_ms']:.2f}×, "
              f"torch {one['torch_ms'] / many['torch_ms']:.2f}×")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
        print(f"rows written to {args.json}")


if __name__ == "__main__":
    sys.exit(main())
