"""Training throughput and peak memory of RK-Net's RK4 block: ours vs torchdiffeq (fixed-step rk4, adjoint).

Usage: python benchmarks/rknet.py [--steps 2] [--batch 64] [--iters 20] [--repeats 2] [--paper] [--dopri5]
       [--out results/rknet.json]

The same network (same initial weights, same batches of real digits, or random 28×28 images with
``--paper``, the paper's MNIST network) is trained with its ODE block integrated by

- ``ours``: :func:`hybridzoo.physics.integrators.odeint`, classical RK4, back-propagated directly;
- ``torchdiffeq_rk4``: ``torchdiffeq.odeint(method="rk4", step_size=1/steps)`` (torchdiffeq's RK4
  is the 3/8-rule variant: same order and cost, slightly different numbers);
- ``torchdiffeq_rk4_adjoint``: the same through ``odeint_adjoint`` (memory O(1) in the steps);
- ``dopri5_adjoint`` (``--dopri5``): ODE-Net's adaptive solver with the adjoint.

Each variant runs in its own subprocess, ``--repeats`` times interleaved (the fastest kept).
Throughput: images/s of full Adam training steps after warm-up. Memory: on CUDA the peak
allocated; on CPU the peak resident-set growth (``ru_maxrss``) over the process's state before the
first forward pass, and the bytes autograd saves in one forward pass.
Writes ``benchmarks/results/rknet.json`` (or ``--out``) with ratios to ``ours``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

VARIANTS = {
    "ours": {"solver": "rk4", "adjoint": False},
    "torchdiffeq_rk4": {"solver": "torchdiffeq-rk4", "adjoint": False},
    "torchdiffeq_rk4_adjoint": {"solver": "torchdiffeq-rk4", "adjoint": True},
    "dopri5_adjoint": {"solver": "dopri5", "adjoint": True},
}


def _rss_mb() -> float:
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker(args: argparse.Namespace) -> dict:
    import torch.nn.functional as F
    from hybridzoo.zoo.rk_net import RKNet, RKNetMNIST

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cfg = VARIANTS[args.variant]
    cls = RKNetMNIST if args.paper else RKNet
    torch.manual_seed(0)  # same initial weights for every variant
    model = cls(baselines=False, steps=args.steps, solver=cfg["solver"], adjoint=cfg["adjoint"]).to(device)
    net = model.net["rknet"]
    g = torch.Generator().manual_seed(1)
    if args.paper:
        xs = torch.rand(args.iters + 2, args.batch, 1, 28, 28, generator=g)
        ys = torch.randint(0, 10, (args.iters + 2, args.batch), generator=g)
    else:
        from hybridzoo.datamodules.digits import load_digits_split

        x, y = load_digits_split()["train"]
        idx = torch.randint(0, len(y), (args.iters + 2, args.batch), generator=g)
        xs, ys = x[idx], y[idx]
    xs, ys = xs.to(device), ys.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    rss0 = _rss_mb()  # before any forward pass: growth from here is activations + optimiser state

    def step(i: int) -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(xs[i]), ys[i]).backward()
        opt.step()

    # bytes autograd keeps for backward in one forward pass (the activation memory)
    saved = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        saved += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = F.cross_entropy(net(xs[0]), ys[0])
    del loss
    with torch.no_grad():
        logits = net(xs[0]).cpu()
    nfe_forward = model.ode_block.nfe
    for i in range(2):  # warm-up
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for i in range(args.iters):
        step(2 + i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    out = {
        "variant": args.variant,
        "images_per_s": args.iters * args.batch / elapsed,
        "ms_per_step": 1e3 * elapsed / args.iters,
        "nfe_forward": nfe_forward,
        "autograd_saved_mb": saved / 2**20,
        "params": sum(p.numel() for p in net.parameters()),
        "logits_first_batch": logits.tolist(),
    }
    if device.type == "cuda":
        out["peak_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        out["peak_rss_growth_mb"] = _rss_mb() - rss0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2, help="fixed steps over [0, 1] (the rk-net-digits config's)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--iters", type=int, default=20, help="timed training steps per variant")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2, help="interleaved runs per variant (fastest kept)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--paper", action="store_true", help="the paper's 28x28 MNIST network (random images)")
    ap.add_argument("--dopri5", action="store_true", help="also ODE-Net: dopri5 + adjoint")
    ap.add_argument("--variant", choices=list(VARIANTS), help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "rknet.json"))
    args = ap.parse_args()
    # checked here: a zero would otherwise surface as a worker's traceback (steps, iters) or a KeyError (repeats)
    for name in ("steps", "batch", "iters", "threads", "repeats"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.variant:  # worker process
        print(json.dumps(worker(args)))
        return
    names = [v for v in VARIANTS if v != "dopri5_adjoint" or args.dopri5]
    common = [
        f"--steps={args.steps}",
        f"--batch={args.batch}",
        f"--iters={args.iters}",
        f"--threads={args.threads}",
        f"--device={args.device}",
    ] + (["--paper"] if args.paper else [])
    results: dict[str, dict] = {}
    for rep in range(args.repeats):  # interleaved repeats; the fastest run of each variant is kept
        for name in names:
            cmd = [sys.executable, __file__, f"--variant={name}", *common]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                # the worker's traceback is the only account of what went wrong: show it, not just the status
                sys.stderr.write(proc.stderr)
                raise SystemExit(f"rknet.py: worker {name!r} (repeat {rep}) failed with exit status "
                                 f"{proc.returncode}: {' '.join(cmd)}")
            r = json.loads(proc.stdout.splitlines()[-1])
            print(rep, {k: v for k, v in r.items() if k != "logits_first_batch"}, flush=True)
            if name not in results or r["images_per_s"] > results[name]["images_per_s"]:
                results[name] = r
    ref = results["ours"]
    ref_logits = torch.tensor(ref.pop("logits_first_batch"))
    mem_key = "peak_memory_mb" if args.device.startswith("cuda") else "peak_rss_growth_mb"
    for name, r in results.items():
        logits = torch.tensor(r.pop("logits_first_batch")) if name != "ours" else ref_logits
        r["max_abs_logit_diff_vs_ours"] = float((logits - ref_logits).abs().max())
        r["throughput_ratio_vs_ours"] = r["images_per_s"] / ref["images_per_s"]
        r["saved_memory_ratio_vs_ours"] = r["autograd_saved_mb"] / ref["autograd_saved_mb"]
        if ref.get(mem_key):
            r[f"{mem_key}_ratio_vs_ours"] = r[mem_key] / ref[mem_key]
    report = {
        "benchmark": "RK-Net training: our RK4 block vs torchdiffeq rk4 (direct and adjoint)",
        "network": "paper MNIST (28x28, width 64)" if args.paper else "rk-net-digits default (8x8, width 32)",
        "settings": {k: getattr(args, k) for k in ("steps", "batch", "iters", "threads", "device", "repeats")},
        "results": results,
        "hardware": torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else platform.processor() or platform.machine(),
        "versions": {"torch": torch.__version__, "torchdiffeq": __import__("torchdiffeq").__version__},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
