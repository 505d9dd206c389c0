import subprocess
import sys
from pathlib import Path

import pytest

RUN_ALL = Path(__file__).resolve().parents[1] / "benchmarks" / "run_all.py"


def test_unknown_benchmark_name_fails_and_lists_the_valid_names():
    # before, a misspelt name ran nothing and exited 0, as if the benchmarks had passed
    proc = subprocess.run(
        [sys.executable, str(RUN_ALL), "rknet_seed"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert "unknown benchmark(s): rknet_seed" in proc.stderr
    assert "rknet_seeds" in proc.stderr and "run_all" not in proc.stderr.split("valid names:")[1]
    assert "==" not in proc.stdout  # nothing ran
    # --help printed "unknown benchmark(s): --help"
    proc = subprocess.run([sys.executable, str(RUN_ALL), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "benchmarks: aerofoil" in proc.stdout and "==" not in proc.stdout


BENCH = RUN_ALL.parent
RESULTS = BENCH / "results"


def _load(name):
    """A benchmark script as a module (benchmarks/ is no package; the scripts import ``_seeds`` by path)."""
    import importlib.util

    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rknet_seeds_default_seeds_are_those_of_the_committed_results():
    # run_all.py passes no arguments, so the default must regenerate what the committed file holds
    import json

    committed = [r["seed"] for r in json.loads((RESULTS / "rknet_seeds.json").read_text())["runs"]]
    assert _load("rknet_seeds").parser().parse_args([]).seeds == committed == [0, 1, 2, 3, 4]


def _run(seed, error):
    return {"seed": seed, "wall_time_s": 1.0, "test/error": error}


def test_merge_runs_keeps_the_other_seeds_and_replaces_a_rerun_seed():
    seeds = _load("_seeds")
    stored = [_run(2, 0.3), _run(0, 0.1), _run(1, 0.2)]
    merged = seeds.merge_runs(stored, [_run(3, 0.4)])
    assert [r["seed"] for r in merged] == [0, 1, 2, 3]  # before, --seeds 3 kept seed 3 alone
    merged = seeds.merge_runs(merged, [_run(0, 0.5)])
    assert [(r["seed"], r["test/error"]) for r in merged] == [(0, 0.5), (1, 0.2), (2, 0.3), (3, 0.4)]
    summary = seeds.summarise(merged, ["test/error"])["test/error"]
    assert abs(summary["mean"] - 0.35) < 1e-12 and summary["std"] > 0


def test_stored_runs_only_returns_runs_of_the_same_configuration(tmp_path):
    import json

    seeds = _load("_seeds")
    out = tmp_path / "seeds.json"
    assert seeds.stored_runs(out, {"config": {"a": 1}}) == []
    out.write_text(json.dumps({"config": {"a": 1}, "epochs_override": None, "runs": [_run(0, 0.1)]}))
    assert seeds.stored_runs(out, {"config": {"a": 1}, "epochs_override": None}) == [_run(0, 0.1)]
    # runs of another configuration are discarded only when asked to (--replace); the file is untouched
    before = out.read_text()
    for other in ({"config": {"a": 2}}, {"config": {"a": 1}, "epochs_override": 3}):
        with pytest.raises(SystemExit, match=r"holds runs of another configuration .*--replace"):
            seeds.stored_runs(out, other)
        assert seeds.stored_runs(out, other, replace=True) == []
    assert out.read_text() == before
    # nor is an unrelated file at --out, or a folder
    other_file = tmp_path / "other.json"
    other_file.write_text('{"benchmark": "something else"}')
    with pytest.raises(SystemExit, match="is not a results file of this benchmark"):
        seeds.stored_runs(other_file, {"config": {"a": 1}})
    with pytest.raises(SystemExit, match="is a folder"):
        seeds.stored_runs(tmp_path, {"config": {"a": 1}})


def test_navier_stokes_summary_leaves_unconverged_solves_out_of_the_ranges():
    import json

    ns = _load("navier_stokes")
    result = json.loads((RESULTS / "navier_stokes.json").read_text())
    summary = ns.summarise(result)
    wake = summary["speedup_vs_phiflow_best_mode"]["wake"]["256"]
    assert wake["converged"] == {"forward_ms": True, "forward_backward_ms": False}  # PhiFlow's adjoint hit 1000
    assert list(summary["unconverged_rows"]) == ["wake 256"]
    assert summary["unconverged_rows"]["wake 256"]["phiflow"]["pressure_iterations"]["adjoint"] == ns.MAX_ITER
    # the range spans exactly the converged ratios: the cut-short row's is not among them
    rows = [r for sizes in summary["speedup_vs_phiflow_best_mode"].values() for r in sizes.values()]
    converged = [r["forward_backward_ms"] for r in rows if r["converged"]["forward_backward_ms"]]
    assert len(converged) == len(rows) - 1
    assert summary["speedup_range_converged"]["all"]["forward_backward_ms"] == [min(converged), max(converged)]
    # the committed file carries the flags, and recomputing them changes nothing
    assert {k: result[k] for k in summary} == summary


@pytest.mark.parametrize("option", ["--iters", "--steps", "--repeats"])
def test_rknet_rejects_non_positive_counts_before_starting_workers(option):
    proc = subprocess.run([sys.executable, str(BENCH / "rknet.py"), f"{option}=0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert f"{option} must be >= 1" in proc.stderr


@pytest.mark.parametrize("script", ["aerofoil.py", "solver_in_the_loop.py solver-in-the-loop-ns", "navier_stokes.py"])
def test_a_file_at_out_that_is_no_results_file_is_kept(tmp_path, script):
    mine = tmp_path / "notes.txt"
    mine.write_text("mine")
    name, *args = script.split()
    proc = subprocess.run([sys.executable, str(BENCH / name), *args, "--out", str(mine)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "is not a results file of this benchmark" in proc.stderr
    assert mine.read_text() == "mine"


def test_out_check_wants_a_json_object_with_the_marker(tmp_path):
    out = _load("_out")
    errors = []
    for i, text in enumerate(['"phiflow runs"', '["phiflow"]', '{"phiflow": {}}']):
        path = tmp_path / f"f{i}.json"
        path.write_text(text)
        out.check_out(errors.append, path, "phiflow")
    assert len(errors) == 2  # a string or list holding the marker is no results file


def test_aerofoil_data_efficiency_rejects_a_bad_size_before_training(tmp_path):
    out = tmp_path / "curve.json"
    proc = subprocess.run([sys.executable, str(BENCH / "aerofoil_data_efficiency.py"), "--sizes", "10", "100000",
                           "--steps", "1", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "--sizes must be <=" in proc.stderr
    assert not out.exists() and '"seed"' not in proc.stdout  # nothing was trained


def test_aerofoil_data_efficiency_keeps_the_stored_runs_of_other_seeds(tmp_path):
    import json

    from hybridzoo.zoo.registry import load_config

    model_args = dict(load_config("residual-aerofoil")["model"]["init_args"])
    data_args = dict(load_config("residual-aerofoil")["data"]["init_args"])
    efficiency = _load("aerofoil_data_efficiency")
    same = {"steps": 2, "model": model_args, "data": data_args, "data_sha256": efficiency.data_digest(data_args),
            "split_sha256": efficiency.split_digest(data_args)}
    stored = {"n_train_foils": 10, "seed": 7, "wall_s": 1.0,
              "test/mae": 0.05, "test/mae_nn": 0.1, "test/mae_panel": 0.09, "test/mae_pgml": 0.06}
    out = tmp_path / "curve.json"
    out.write_text(json.dumps({**same, "summary": [], "rows": [stored]}))
    proc = subprocess.run([sys.executable, str(BENCH / "aerofoil_data_efficiency.py"), "--sizes", "10",
                           "--steps", "2", "--seeds", "5", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert [(r["n_train_foils"], r["seed"]) for r in result["rows"]] == [(10, 5), (10, 7)]
    assert result["rows"][1] == stored
    assert result["summary"][0]["seeds"] == 2
    assert set(result["rows"][0]["provenance"]) == {"threads", "commit", "versions"}
    # runs of another configuration, or on other data bytes, are not pooled with these
    seeds = _load("_seeds")
    assert seeds.stored_runs(out, same, key="rows") == result["rows"]
    for other in ({**same, "steps": 3}, {**same, "data_sha256": "0" * 64}, {**same, "split_sha256": "0" * 16}):
        assert seeds.stored_runs(out, other, key="rows", replace=True) == []


@pytest.mark.parametrize("name", ["tomography", "navier_stokes"])
def test_a_benchmark_without_its_peer_fails_and_writes_nothing(name, tmp_path, monkeypatch, capsys):
    module = _load(name)
    monkeypatch.setattr(module, "PEER_PYTHON", tmp_path / "no-venv" / "bin" / "python")
    out = tmp_path / "result.json"
    monkeypatch.setattr(sys, "argv", [name, "--out", str(out)])
    import torch

    threads = torch.get_num_threads()
    try:
        assert module.main() == 1
    finally:
        torch.set_num_threads(threads)  # main() sets one thread for its timings
    assert not out.exists()
    assert "make bench-peers" in capsys.readouterr().err


def test_aerofoil_benchmark_rejects_training_for_no_epochs():
    proc = subprocess.run([sys.executable, str(BENCH / "aerofoil.py"), "--train", "0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "--train must be >= 1" in proc.stderr


def test_aerofoil_error_breakdown_finds_the_aerofoil_that_carries_the_mean():
    import torch

    foil = torch.tensor([3, 3, 5, 5, 5, 8])
    errors = {"residual": torch.tensor([0.1, 0.3, 0.01, 0.02, 0.03, 0.05]),
              "panel": torch.tensor([1.0, 1.0, 0.5, 0.5, 0.5, 0.2])}
    got = _load("aerofoil").error_breakdown(errors, foil, [f"foil{i}" for i in range(9)], worst=2)
    assert [(w["name"], w["rows"]) for w in got["worst_aerofoils"]] == [("foil3", 2), ("foil8", 1)]
    assert got["worst_aerofoils"][0]["residual"] == pytest.approx(0.2)
    assert got["worst_aerofoils"][1]["panel"] == pytest.approx(0.2)
    assert got["mae_without_worst_aerofoil"]["residual"] == pytest.approx(0.11 / 4)
    assert got["median"]["panel"] == pytest.approx(0.5)


def test_a_seeds_call_that_runs_no_seed_leaves_the_file_as_it_was(tmp_path):
    # it rewrote the hardware line from the current --threads over runs made with other threads
    out = tmp_path / "seeds.json"
    committed = (RESULTS / "solver_in_the_loop_ns_seeds.json").read_bytes()
    out.write_bytes(committed)
    proc = subprocess.run([sys.executable, str(BENCH / "solver_in_the_loop_seeds.py"), "--seeds", "0", "1",
                           "--threads", "7", "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "unchanged" in proc.stdout and out.read_bytes() == committed
    for bad in (["--seeds", "0", "0"], ["--seeds", "-1"], ["--threads", "0"]):
        proc = subprocess.run([sys.executable, str(BENCH / "solver_in_the_loop_seeds.py"), *bad, "--out", str(out)],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 2 and out.read_bytes() == committed, bad
