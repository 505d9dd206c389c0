import time

import numpy as np
import pytest
import torch
from hybridzoo.datamodules import xfoil as xfoil_module
from hybridzoo.datamodules.xfoil import (
    XfoilError,
    XfoilMissing,
    XfoilTimeout,
    parse_polar,
    run_polar,
    xfoil_available,
)
from hybridzoo.physics.airfoil import naca4_from_code

needs_xfoil = pytest.mark.skipif(not xfoil_available(), reason="xfoil and xvfb-run are not installed")

POLAR = """
       XFOIL         Version 6.99

 Calculated polar for: NACA 2412

 1 1 Reynolds number fixed          Mach number fixed

 xtrf =   1.000 (top)        1.000 (bottom)
 Mach =   0.000     Re =     1.000 e 6     Ncrit =   9.000  9.000

   alpha    CL        CD       CDp       CM     Top_Xtr  Bot_Xtr  Top_Itr  Bot_Itr
  ------ -------- --------- --------- -------- -------- -------- -------- --------
   0.000   0.2371   0.00564   0.00049  -0.0520   0.6517   0.6795  23.5781 139.8384
   5.000   0.8094   0.00775   0.00125  -0.0540   0.3155   1.0000  44.3265 160.0000
"""


def test_parse_polar_text():
    cols = parse_polar(POLAR)
    np.testing.assert_allclose(cols["alpha"], [0.0, 5.0])
    np.testing.assert_allclose(cols["cl"], [0.2371, 0.8094])
    np.testing.assert_allclose(cols["cd"], [0.00564, 0.00775])
    empty = parse_polar(POLAR.split("  ------")[0] + "  ------ --------\n")
    assert empty["cl"].shape == (0,)
    with pytest.raises(ValueError, match="polar"):
        parse_polar("no header here")
    with pytest.raises(TypeError, match="text"):
        parse_polar(None)


def test_bad_arguments_are_rejected_before_running():
    c = naca4_from_code("2412", 40, closed_te=False, dtype=torch.float64)
    with pytest.raises(ValueError, match="re"):
        run_polar(c, 10.0, [0.0])
    with pytest.raises(ValueError, match="alphas"):
        run_polar(c, 1e6, [])
    with pytest.raises(ValueError, match="alphas"):
        run_polar(c, 1e6, [float("nan")])
    with pytest.raises(ValueError, match="coords"):
        run_polar(c[:-10], 1e6, [0.0])
    with pytest.raises(TypeError, match="re must be a real number .*got Tensor"):  # not "got tensor(1000000.)"
        run_polar(c, torch.tensor(1e6), [0.0])
    with pytest.raises(TypeError, match="alphas must be a sequence"):
        run_polar(c, 1e6, 2.0)


@needs_xfoil
def test_real_naca2412_polar():
    # XFOIL's own NACA 2412 at Re = 1e6 gives Cl = 0.809 at 5 deg; our coordinates (same open-TE
    # formula, 161 points, re-panelled by XFOIL) agree to about 0.005.
    c = naca4_from_code("2412", 80, closed_te=False, dtype=torch.float64)
    pol = run_polar(c, 1e6, [5.0, 0.0, -2.0, 25.0])
    assert pol.cl[0] == pytest.approx(0.809, abs=0.01)
    assert pol.cl[1] == pytest.approx(0.24, abs=0.01)
    assert pol.cl[2] < 0.1
    assert 0.004 < pol.cd[1] < 0.008
    assert pol.converged[:3].all()
    # At 25 deg, far past stall, XFOIL either fails (recorded as missing) or returns a stalled Cl.
    assert (not pol.converged[3] and np.isnan(pol.cl[3]) and pol.n_missing == 1) or pol.cl[3] < 1.6


def test_missing_executable_raises(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    c = naca4_from_code("0012", 40, closed_te=False, dtype=torch.float64)
    assert not xfoil_available()
    with pytest.raises(XfoilMissing, match="xfoil"):
        run_polar(c, 1e6, [0.0])
    assert issubclass(XfoilMissing, XfoilError)  # reported in one line by the CLI, as every XfoilError


def _fake_xfoil(tmp_path, monkeypatch, sweep_rows: str, retry_rows: str = ""):
    """Install a stand-in for XFOIL that writes the given polar rows and keeps the scripts it was fed.

    The rows are ``printf`` formats: their ``\\n`` become line breaks.
    """
    header = "   alpha    CL        CD       CDp       CM     Top_Xtr  Bot_Xtr\\n  ------ -------- ---------\\n"
    exe = tmp_path / "fake_xfoil.sh"
    exe.write_text(
        "#!/bin/bash\n"
        f"script=$(cat); n=$(ls {tmp_path}/script_*.txt 2>/dev/null | wc -l)\n"
        f'printf "%s" "$script" > {tmp_path}/script_$n.txt\n'
        f'if grep -q retry.txt <<< "$script"; then printf "{header}{retry_rows}" > retry.txt; '
        f'else printf "{header}{sweep_rows}" > polar.txt; fi\n'
    )
    exe.chmod(0o755)
    monkeypatch.setattr(xfoil_module, "xfoil_command", lambda: [str(exe)])
    return lambda: [(tmp_path / f"script_{k}.txt").read_text() for k in range(len(list(tmp_path.glob("script_*"))))]


def row(alpha, cl):
    return f"  {alpha:7.3f}  {cl:7.4f}   0.00600   0.00100  -0.0500   0.5000   0.5000\\n"


def test_each_angle_takes_its_nearest_row_only(tmp_path, monkeypatch):
    # rows 1.000 and 1.004: the old matching (atol 6e-3, last hit wins) gave both angles the second row
    _fake_xfoil(tmp_path, monkeypatch, row(1.0, 0.1) + row(1.004, 0.9))
    c = naca4_from_code("2412", 40, closed_te=False, dtype=torch.float64)
    pol = run_polar(c, 1e6, [1.004, 1.0, 1.002])
    np.testing.assert_array_equal(pol.cl[:2], [0.9, 0.1])
    assert np.isnan(pol.cl[2]) and pol.converged.tolist() == [True, True, False]  # no row within 0.0006
    with pytest.raises(ValueError, match="alphas"):  # XFOIL prints 3 decimals: these cannot be told apart
        run_polar(c, 1e6, [1.0, 1.0004])


def test_missing_angles_are_retried_from_a_fresh_boundary_layer(tmp_path, monkeypatch):
    scripts = _fake_xfoil(tmp_path, monkeypatch, row(0.0, 0.2) + row(1.0, 0.3), row(3.0, 0.5))
    c = naca4_from_code("2412", 40, closed_te=False, dtype=torch.float64)
    pol = run_polar(c, 1e6, [3.0, 0.0, -1.0, 1.0])
    assert np.isnan(pol.cl[2]) and not pol.converged[2]  # still missing after the retry: never invented
    np.testing.assert_array_equal(pol.cl[[0, 1, 3]], [0.5, 0.2, 0.3])
    assert pol.n_missing == 1
    sweep, retry = scripts()
    assert "retry.txt" in retry and "ALFA 0.0000" not in retry  # only the missing angles are rerun
    alfa = [line for line in retry.splitlines() if line.startswith(("ALFA", "INIT"))]
    # XFOIL's INIT toggles its flag: set before every angle but the first (a fresh process starts clear)
    assert alfa == ["ALFA -1.0000", "INIT", "ALFA 3.0000"]
    assert len(run_polar(c, 1e6, [0.0, 1.0]).cl) == 2 and len(scripts()) == 3  # nothing missing: no retry
    run_polar(c, 1e6, [3.0], retry=False)
    assert len(scripts()) == 4


@needs_xfoil
def test_retry_recovers_a_branch_poisoned_by_one_failed_point():
    # NACA 4408 at Re = 1e7: one sweep 0..10 deg fails from 4 deg on (each failure starts the next point
    # from a broken boundary layer); every angle converges when run on its own.
    from hybridzoo.datamodules.aerofoil_build import prepare_shape
    from hybridzoo.physics.airfoil import naca4, parse_naca4

    c = prepare_shape(naca4(*parse_naca4("4408"), n_per_side=200, closed_te=False, dtype=torch.float64), 80)
    alphas = [float(a) for a in range(0, 11)]
    pol = run_polar(c, 1e7, alphas)
    assert pol.converged.all(), pol.cl
    assert np.all(np.diff(pol.cl) > 0.08)  # pre-stall: lift rises about 0.1 per degree
    for a in (4.0, 10.0):
        alone = run_polar(c, 1e7, [a])
        assert alone.cl[0] == pytest.approx(pol.cl[alphas.index(a)], abs=2e-3)
        assert alone.cd[0] == pytest.approx(pol.cd[alphas.index(a)], rel=2e-2)


def test_a_timeout_is_reported_not_taken_for_non_convergence(tmp_path, monkeypatch):
    # XFOIL writes its polar point by point: a process killed at the timeout leaves what it had
    exe = tmp_path / "slow_xfoil.sh"
    exe.write_text(
        "#!/bin/bash\n"
        'script=$(cat); if [ -e "$STALL_BEFORE" ]; then sleep 30; fi\n'
        'printf "   alpha    CL        CD       CDp       CM     Top_Xtr  Bot_Xtr\\n  ------\\n'
        f'{row(0.0, 0.2)}" > polar.txt\n'
        'grep -q retry.txt <<< "$script" || sleep 30\n'
    )
    exe.chmod(0o755)
    monkeypatch.setattr(xfoil_module, "xfoil_command", lambda: [str(exe)])
    c = naca4_from_code("2412", 40, closed_te=False, dtype=torch.float64)
    pol = run_polar(c, 1e6, [0.0, 2.0], timeout=1.0)
    assert pol.timed_out and pol.cl[0] == 0.2 and np.isnan(pol.cl[1])
    monkeypatch.setenv("STALL_BEFORE", str(exe))
    with pytest.raises(XfoilTimeout, match="no polar"):
        run_polar(c, 1e6, [0.0], timeout=1.0)
    assert issubclass(XfoilTimeout, XfoilError)


def test_a_polar_that_converges_in_time_is_not_flagged(tmp_path, monkeypatch):
    _fake_xfoil(tmp_path, monkeypatch, row(0.0, 0.2))
    c = naca4_from_code("2412", 40, closed_te=False, dtype=torch.float64)
    assert not run_polar(c, 1e6, [0.0, 2.0]).timed_out  # 2 deg is missing, but XFOIL finished


def _retrying_xfoil(tmp_path, monkeypatch, retry_hangs: bool) -> None:
    """A stand-in XFOIL whose sweep converges at 0 deg only and whose retry converges at 2 deg, then (if
    ``retry_hangs``) hangs; the retry's budget is 0.5 s + 0.25 s per angle."""
    exe = tmp_path / "retrying_xfoil.sh"
    header = "   alpha    CL        CD       CDp       CM     Top_Xtr  Bot_Xtr\\n  ------\\n"
    exe.write_text(
        "#!/bin/bash\n"
        'script=$(cat)\n'
        f'if grep -q retry.txt <<< "$script"; then printf "{header}{row(2.0, 0.4)}" > retry.txt; '
        f'{"sleep 30; " if retry_hangs else ""}'
        f'else printf "{header}{row(0.0, 0.2)}" > polar.txt; fi\n'
    )
    exe.chmod(0o755)
    monkeypatch.setattr(xfoil_module, "xfoil_command", lambda: [str(exe)])
    monkeypatch.setattr(xfoil_module, "RETRY_SECONDS", 0.5)
    monkeypatch.setattr(xfoil_module, "RETRY_SECONDS_PER_ANGLE", 0.25)


def test_a_hanging_retry_is_cut_at_its_budget_and_keeps_what_it_had(tmp_path, monkeypatch):
    # Real XFOIL can hang after a point whose fresh boundary layer diverged (NACA 0006, Re 1e6, 10 deg):
    # the retry used to spend the sweep's whole timeout (60 s) on every such polar
    _retrying_xfoil(tmp_path, monkeypatch, retry_hangs=True)
    c = naca4_from_code("2412", 40, closed_te=False, dtype=torch.float64)
    start = time.perf_counter()
    pol = run_polar(c, 1e6, [0.0, 2.0, 5.0], timeout=60.0)
    assert time.perf_counter() - start < 15  # 0.5 + 2 * 0.25 s, not the 60 s timeout
    np.testing.assert_array_equal(pol.cl[:2], [0.2, 0.4])
    assert np.isnan(pol.cl[2]) and not pol.timed_out  # the sweep finished: XFOIL's verdict, not a lack of time
    # ... but the retry's cut is on record (Polar.retry_timed_out), so that a data build reruns the polar: a
    # loaded machine cuts a retry of convergeable angles just as a hang does
    assert pol.retry_timed_out and "killed after" in pol.log


def _marked_processes(mark: str) -> list[int]:
    """PIDs of the processes whose environment holds ``mark`` (Linux /proc)."""
    from pathlib import Path

    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if mark.encode() in (proc / "environ").read_bytes():
                    pids.append(int(proc.name))
            except OSError:  # gone meanwhile, or not ours to read
                pass
    return pids


_HUNG_BUILD = """
import sys
from pathlib import Path
from hybridzoo.datamodules import xfoil
from hybridzoo.datamodules.aerofoil_build import build_arrays
# XFOIL can hang without a word (a diverged fresh boundary layer): a silent process that runs for a minute
# stands in for it, since no input makes the real one hang on demand
xfoil.xfoil_command = lambda: ["sh", "-c", "exec sleep 60"]
build_arrays(n_uiuc=0, naca=["2412", "0012", "4412"], reynolds=[1e6], alphas=[0.0, 2.0], n_per_side=40, seed=0,
             workers=2, work_dir=Path(sys.argv[1]), progress=False)
"""


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="reads /proc")
def test_a_terminated_build_leaves_no_xfoil_running_and_records_nothing(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import uuid

    name, value = "HYBRIDZOO_TEST_MARK", uuid.uuid4().hex
    mark = f"{name}={value}"
    work = tmp_path / "polars"
    build = subprocess.Popen([sys.executable, "-c", _HUNG_BUILD, str(work)], env={**os.environ, name: value})
    try:
        deadline = time.monotonic() + 60
        while len(_marked_processes(mark)) < 3 and time.monotonic() < deadline:  # the build and two "XFOIL"s
            time.sleep(0.1)
        assert len(_marked_processes(mark)) >= 3, "the build started no XFOIL"
        build.send_signal(signal.SIGTERM)  # as `timeout` or a batch scheduler stops a job
        assert build.wait(timeout=20) != 0
        deadline = time.monotonic() + 2  # the build kills its XFOIL before it exits; allow for reaping
        while _marked_processes(mark) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _marked_processes(mark) == [], "XFOIL outlived the build"
    finally:
        build.kill()
        for pid in _marked_processes(mark):  # whatever the outcome, leave nothing behind
            os.kill(pid, signal.SIGKILL)
    assert list(work.glob("*.json")) == []  # the killed runs were not recorded as failed polars


def test_the_sweep_marches_out_from_zero_and_restarts_the_negative_branch(tmp_path, monkeypatch):
    exe = tmp_path / "fake_xfoil.sh"  # writes an empty polar and keeps the script it was fed
    exe.write_text("#!/bin/bash\ncat > " + str(tmp_path / "script.txt") + "\n"
                   "printf '   alpha    CL        CD       CDp       CM\\n  ------ --------\\n' > polar.txt\n")
    exe.chmod(0o755)
    monkeypatch.setattr(xfoil_module, "xfoil_command", lambda: [str(exe)])
    c = naca4_from_code("2412", 40, closed_te=False, dtype=torch.float64)
    run_polar(c, 1e6, [-3.0, 2.0, -1.0, 0.0, 4.0], retry=False)
    cmds = [s for s in (tmp_path / "script.txt").read_text().splitlines() if s.startswith(("ALFA", "INIT"))]
    assert cmds == ["ALFA 0.0000", "ALFA 2.0000", "ALFA 4.0000", "INIT", "ALFA -1.0000", "ALFA -3.0000"]


def test_a_retry_that_ends_in_time_is_no_cut(tmp_path, monkeypatch):
    _retrying_xfoil(tmp_path, monkeypatch, retry_hangs=False)
    c = naca4_from_code("2412", 40, closed_te=False, dtype=torch.float64)
    pol = run_polar(c, 1e6, [0.0, 2.0, 5.0])  # its missing angle is XFOIL's verdict
    assert not pol.retry_timed_out and not pol.timed_out and np.isnan(pol.cl[2])
    np.testing.assert_array_equal(pol.cl[:2], [0.2, 0.4])
    assert not run_polar(c, 1e6, [0.0]).retry_timed_out  # no retry at all


def test_n_iter_timeout_retry_and_alphas_are_checked_before_running(tmp_path, monkeypatch):
    # n_iter=2.5 made every point NaN without a word; 0, 'abc' or True stopped XFOIL with an obscure
    # XfoilError; timeout=-1 raised XfoilTimeout, '60' "float + str", nan "cannot convert NaN to integer"
    monkeypatch.setattr(xfoil_module, "xfoil_command", lambda: pytest.fail("XFOIL was started"))
    c = naca4_from_code("2412", 40, closed_te=False, dtype=torch.float64)
    bad = [
        (dict(n_iter=2.5), TypeError, "n_iter must be a positive int"),
        (dict(n_iter="abc"), TypeError, "n_iter"),
        (dict(n_iter=True), TypeError, "n_iter"),
        (dict(n_iter=0), ValueError, "n_iter must be a positive int"),
        (dict(n_iter=-5), ValueError, "n_iter"),
        (dict(timeout=-1), ValueError, "timeout must be a finite positive"),
        (dict(timeout=0), ValueError, "timeout"),
        (dict(timeout=1e300), ValueError, r"timeout .* at most 604800"),  # started XFOIL, then overflowed
        (dict(timeout=float("nan")), ValueError, "timeout"),
        (dict(timeout=float("inf")), ValueError, "timeout"),
        (dict(timeout="60"), TypeError, "timeout must be a positive number of seconds"),
        (dict(timeout=True), TypeError, "timeout"),
        (dict(retry="no"), TypeError, "retry must be a bool"),
    ]
    for kw, error, message in bad:
        with pytest.raises(error, match=message):
            run_polar(c, 1e6, [0.0], **kw)
    with pytest.raises(TypeError, match="alphas must hold real numbers"):  # was read as 1.0
        run_polar(c, 1e6, ["1.0"])
    with pytest.raises(TypeError, match="alphas must hold real numbers"):  # was read as 1.0
        run_polar(c, 1e6, [True])
    with pytest.raises(TypeError, match="alphas must be a sequence"):
        run_polar(c, 1e6, np.float64(2.0) + np.zeros(()))  # a 0-d array
    with pytest.raises(ValueError, match="re must be a Reynolds number"):
        run_polar(c, float("nan"), [0.0])
    with pytest.raises(TypeError, match="alphas must be a sequence"):  # a dict's keys were the angles
        run_polar(c, 1e6, {0.0: "a", 2.0: "b"})
    with pytest.raises(TypeError, match="coords must have a real floating dtype"):  # an int tensor was cast
        run_polar((c * 1000).long(), 1e6, [0.0])
    with pytest.raises(TypeError, match="coords must be a .K, 2. array of numbers"):  # numpy's message named nothing
        run_polar([["a", "b"]] * 20, 1e6, [0.0])
    # NumPy numbers are real numbers and ints like any other
    _fake_xfoil(tmp_path, monkeypatch, row(0.0, 0.2) + row(1.0, 0.3))
    pol = run_polar(c, np.float32(1e6), np.array([0.0, 1.0], dtype=np.float32), n_iter=np.int64(50),
                    timeout=np.float32(30.0))
    np.testing.assert_array_equal(pol.cl, [0.2, 0.3])
