"""Solver-in-the-loop: SOL against NON and SRC over several training seeds (one run trains SOL and NON).

Usage: python benchmarks/solver_in_the_loop_seeds.py [--name solver-in-the-loop-ns] [--seeds 0 1 2]
       [--threads 1] [--out results/solver_in_the_loop_ns_seeds.json] [--replace]

Each seed trains the zoo config with ``lightning.seed_everything(seed)`` on the same data (data seed 0)
and tests on the unseen Reynolds numbers: 100-step rollout MAE of SOL, NON, SRC and the 2x grid.
The test set is one rollout per test Reynolds number, so a single run's NON/SOL ratio is noisy; this
gives its spread. A training run takes ~12 min (small CNN, one thread), so the output file accumulates
runs: every stored run of the same config is kept whatever ``--seeds`` says (``--seeds 3`` adds seed 3
to the stored 0-2), a requested seed already stored is skipped, and the summary (mean ± std, sample
std) is over all stored runs of that config, not only the requested seeds. A file of another config (or
any other file at ``--out``) is left alone unless ``--replace`` says to discard it. Each run records its
threads, versions and commit; a call that runs no seed leaves the file as it was.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import warnings
from pathlib import Path

from hybridzoo.zoo.registry import load_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _seeds  # noqa: E402

KEYS = ("test/rollout_mae", "test/rollout_mae_non", "test/rollout_mae_src", "test/rollout_mae_2x")
SUMMARY_KEYS = (*KEYS, "non_over_sol", "src_over_sol")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", default="solver-in-the-loop-ns", help="zoo model (its packaged config is trained)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the stored seeds were run with 1)")
    ap.add_argument("--out", default=None, help="default: results/<name>_seeds.json (with underscores)")
    ap.add_argument("--replace", action="store_true",
                    help="discard what --out holds if its runs are of another configuration (or it is another file)")
    args = ap.parse_args()
    from hybridzoo.zoo.registry import list_models

    ns_models = sorted(r["name"] for r in list_models() if r["name"].startswith("solver-in-the-loop"))
    if args.name not in ns_models:  # checked before the training, which takes minutes
        ap.error(f"--name must be a solver-in-the-loop model, one of {ns_models}; got {args.name!r}")
    _seeds.check_seeds(ap, args.seeds)
    if args.threads < 1:
        ap.error(f"--threads must be >= 1, got {args.threads}")
    out = Path(args.out or Path(__file__).parent / "results" / f"{args.name.replace('-', '_')}_seeds.json")
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    config = load_config(args.name)
    runs = _seeds.merge_runs(_seeds.stored_runs(out, {"config": config}, replace=args.replace), [])
    done = {r["seed"] for r in runs}
    for seed in args.seeds:
        if seed in done:
            print(f"seed {seed}: kept from {out}", flush=True)
            continue
        row, _ = _seeds.run_seed(args.name, seed, args.threads, KEYS)
        row["non_over_sol"] = row["test/rollout_mae_non"] / row["test/rollout_mae"]
        row["src_over_sol"] = row["test/rollout_mae_src"] / row["test/rollout_mae"]
        runs = _seeds.merge_runs(runs, [row])
        print(json.dumps(row), flush=True)
        _write(out, args, config, runs)  # after every seed: an interrupted run keeps the seeds it finished
    print(json.dumps(_seeds.summarise(runs, SUMMARY_KEYS), indent=2))
    ran = not done >= set(args.seeds)
    print(f"written {out}" if ran else f"{out} unchanged: every seed asked for was there")


def _write(out: Path, args: argparse.Namespace, config: dict, runs: list[dict]) -> None:
    summary = _seeds.summarise(runs, SUMMARY_KEYS)
    result = {
        "benchmark": f"{args.name}: 100-step rollout MAE (m/s) on the test Reynolds numbers over training seeds",
        "config": config,
        "runs": runs,
        "summary": summary,
        "non_over_sol_at_least_2": f"{sum(r['non_over_sol'] >= 2 for r in runs)}/{len(runs)}",
        "non_over_sol_median": statistics.median(r["non_over_sol"] for r in runs),
        "hardware": platform.processor() or platform.machine(),
        "provenance": "each run's own (threads, versions, commit); the runs without one were made with one "
                      "thread at the release of the shipped checkpoint (2026-11-25, before its solver changes)",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    _seeds.write_json(out, result)


if __name__ == "__main__":
    main()
