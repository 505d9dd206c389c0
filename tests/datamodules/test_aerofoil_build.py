"""The aerofoil data build's bookkeeping: failed and cut-short polars, the summary, the argument checks.

XFOIL is replaced by small shell scripts on the ``PATH`` (or ``run_polar`` by a stand-in), so these tests
need neither XFOIL nor an X server.
"""

import json

import numpy as np
import pytest
import torch
from hybridzoo.datamodules import aerofoil_build, xfoil
from hybridzoo.datamodules.aerofoil_build import XfoilBuildError, build_arrays

KW = dict(n_uiuc=0, reynolds=[1e6], alphas=[0.0, 2.0], n_per_side=40, seed=0, workers=1)


def _fake_path(tmp_path, monkeypatch):
    """Put a fake ``xvfb-run`` and ``xfoil`` first on the PATH; return (call log, file that makes xvfb-run fail once).

    The fake XFOIL writes a converged polar at 0 and 2 deg; the fake xvfb-run fails as Xvfb does when it
    cannot start (exit code 1, no XFOIL run) while the flag file exists, and removes it.
    """
    bin_dir, log, flag = tmp_path / "bin", tmp_path / "calls.txt", tmp_path / "xvfb_fails_once"
    bin_dir.mkdir()
    header = "   alpha    CL        CD       CDp       CM     Top_Xtr  Bot_Xtr\\n  ------ -------- ---------\\n"
    rows = "".join(f"  {a:7.3f}  {a / 10 + 0.1:7.4f}   0.00600   0.00100  -0.0500   0.5000   0.5000\\n" for a in (0, 2))
    (bin_dir / "xvfb-run").write_text(
        "#!/bin/bash\n"
        f'echo xvfb-run >> "{log}"\n'
        f'if [ -e "{flag}" ]; then rm -f "{flag}"; echo "xvfb-run: error: Xvfb failed to start" >&2; exit 1; fi\n'
        'shift\nexec "$@"\n'  # drops -a
    )
    (bin_dir / "xfoil").write_text(
        f'#!/bin/bash\ncat > /dev/null\necho xfoil >> "{log}"\nprintf "{header}{rows}" > polar.txt\n'
    )
    for exe in bin_dir.iterdir():
        exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    assert xfoil.xfoil_command() == [str(bin_dir / "xvfb-run"), "-a", str(bin_dir / "xfoil")]
    return log, flag


def test_a_polar_whose_xfoil_failed_stops_the_build_and_is_rerun_on_resume(tmp_path, monkeypatch, capsys):
    # It used to be stored as "did not converge" (all None, timed_out False): never rerun, never reported,
    # and its points counted as XFOIL's verdict in the data set
    log, flag = _fake_path(tmp_path, monkeypatch)
    work = tmp_path / "polars"
    flag.touch()  # the first polar's xvfb-run fails to start (workers=1: naca0012 runs first)
    with pytest.raises(XfoilBuildError, match=r"1 of 2 polars could not be run.*0000_naca0012_re1e\+06") as info:
        build_arrays(naca=["0012", "2412"], work_dir=work, progress=True, **KW)
    assert isinstance(info.value, xfoil.XfoilError) and info.value.failed == ["0000_naca0012_re1e+06"]
    assert "Xvfb failed to start" in str(info.value) and "run the build again" in str(info.value)
    out = capsys.readouterr().out  # the summary line comes before the error
    assert "[aerofoil] 2 polars: 1 complete, 0 with non-converged points, 0 timed out" in out
    assert "1 failed to run; 0 missing points" in out  # the failed polar's points are not counted as missing
    failed = json.loads((work / "0000_naca0012_re1e+06.json").read_text())
    assert failed["error"] and not failed["timed_out"]
    assert log.read_text().split() == ["xvfb-run", "xvfb-run", "xfoil"]  # the other polar ran
    arr = build_arrays(naca=["0012", "2412"], work_dir=work, progress=True, **KW)  # resumed: the failed one only
    assert log.read_text().split()[3:] == ["xvfb-run", "xfoil"]
    np.testing.assert_allclose(arr["cl"], [0.1, 0.3, 0.1, 0.3])
    out = capsys.readouterr().out
    assert "[aerofoil] 2 polars: 2 complete, 0 with non-converged points, 0 timed out" in out
    assert "0 failed to run; 0 missing points" in out


def test_records_of_failed_runs_from_an_earlier_version_are_rerun(tmp_path, monkeypatch):
    # cached records keep their format: a failed run's (error set, as older builds wrote them) is rerun,
    # a finished polar's (no retry_timed_out key) is used as it is
    log, _ = _fake_path(tmp_path, monkeypatch)
    work = tmp_path / "polars"
    work.mkdir()
    (work / "0000_naca0012_re1e+06.json").write_text(json.dumps(
        {"cl": [None, None], "cd": [None, None], "error": "XFOIL wrote no polar; output tail:\nxvfb-run: error",
         "timed_out": False}))
    (work / "0001_naca2412_re1e+06.json").write_text(json.dumps(
        {"cl": [0.25, None], "cd": [0.006, None], "error": "", "timed_out": False}))
    arr = build_arrays(naca=["0012", "2412"], work_dir=work, progress=False, **KW)
    assert log.read_text().split() == ["xvfb-run", "xfoil"]  # naca0012 only
    np.testing.assert_allclose(arr["cl"], [0.1, 0.3, 0.25, np.nan])


def test_a_polar_whose_retry_was_cut_counts_as_timed_out_and_is_rerun(tmp_path, monkeypatch, capsys):
    # run_polar dropped the retry's timeout flag, so angles a loaded machine cut were stored as XFOIL's verdict
    monkeypatch.setattr(xfoil, "require_xfoil", lambda: ["xfoil"])
    calls = []

    def run(coords, re, alphas, timeout=60.0):
        calls.append(re)
        first = len(calls) == 1
        cl = np.array([0.1, np.nan if first else 0.3])
        return xfoil.Polar(np.asarray(alphas, float), cl, 0 * cl + 0.01, 0 * cl, np.isfinite(cl), re,
                           retry_timed_out=first)

    monkeypatch.setattr(xfoil, "run_polar", run)
    work = tmp_path / "polars"
    arr = build_arrays(naca=["0012"], work_dir=work, progress=True, **KW)
    np.testing.assert_array_equal(arr["cl"], [0.1, np.nan])  # the angles it finished are kept
    rec = json.loads((work / "0000_naca0012_re1e+06.json").read_text())
    assert rec["timed_out"] and rec["retry_timed_out"] and not rec["error"]
    assert "1 polars: 0 complete, 0 with non-converged points, 1 timed out" in capsys.readouterr().out
    arr = build_arrays(naca=["0012"], work_dir=work, progress=False, **KW)  # resumed: rerun
    assert len(calls) == 2 and arr["cl"].tolist() == [0.1, 0.3]
    build_arrays(naca=["0012"], work_dir=work, progress=False, **KW)  # finished now: not rerun
    assert len(calls) == 2


@pytest.mark.parametrize(
    "change, error, message",
    [
        (dict(naca=[], n_uiuc=0), ValueError, "naca is empty and n_uiuc is 0"),  # was "need at least one array"
        (dict(reynolds=[1e6, 100.0]), ValueError, r"reynolds\[1\] must be a Reynolds number in \[1e4, 1e8\]"),
        (dict(reynolds=[1e9]), ValueError, r"reynolds\[0\]"),
        (dict(reynolds=[float("nan")]), ValueError, r"reynolds\[0\]"),
        (dict(reynolds=["1e6"]), TypeError, r"reynolds\[0\] must be a real number"),
        (dict(reynolds=[]), ValueError, "reynolds must hold at least one"),
        (dict(reynolds=1e6), TypeError, "reynolds must be a list"),
        (dict(alphas=[0.0, 45.0]), ValueError, "alphas must be a non-empty sequence of finite angles"),
        (dict(alphas=[]), ValueError, "alphas"),
        (dict(alphas=[1.0, 1.0004]), ValueError, "alphas .* closer than XFOIL's printed resolution"),
        (dict(alphas=["0"]), TypeError, "alphas must hold real numbers"),
        (dict(timeout=-1.0), ValueError, "timeout"),
        (dict(timeout="60"), TypeError, "timeout"),
        (dict(workers=0), ValueError, "workers"),
        (dict(workers=1.5), TypeError, "workers"),
        (dict(n_uiuc=-1), ValueError, "n_uiuc"),
        (dict(seed=0.5), TypeError, "seed"),
        (dict(naca=["12"]), ValueError, "naca holds '12'"),
        (dict(naca="0012"), TypeError, "naca must be a list"),
        (dict(n_per_side=2), ValueError, "n_per_side"),
        (dict(progress="no"), TypeError, "progress must be a bool"),
        (dict(work_dir=None), TypeError, "work_dir"),
    ],
)
def test_bad_build_arguments_are_named_before_any_xfoil_work(tmp_path, monkeypatch, change, error, message):
    # out-of-range Reynolds numbers or angles used to fail inside the first XFOIL job, naming run_polar's
    # re/alphas; naca=[] with n_uiuc=0 failed with NumPy's "need at least one array to stack"
    monkeypatch.setattr(xfoil, "require_xfoil", lambda: ["xfoil"])
    monkeypatch.setattr(xfoil, "run_polar", lambda *a, **k: pytest.fail("XFOIL was run"))
    kw = {**KW, "naca": ["0012"], "work_dir": tmp_path / "polars", "progress": False, **change}
    with pytest.raises(error, match=message):
        build_arrays(**kw)
    assert not (tmp_path / "polars").exists()


def test_a_build_whose_shapes_all_fail_their_checks_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(xfoil, "require_xfoil", lambda: ["xfoil"])
    monkeypatch.setattr(aerofoil_build, "prepare_shape", lambda *a, **k: None)
    with pytest.raises(ValueError, match="no aerofoil passed the shape checks"):
        build_arrays(naca=["0012"], work_dir=tmp_path / "polars", progress=False, **KW)


def test_prepare_shapes_of_a_batch_equals_prepare_shape_of_each_and_names_the_bad_one():
    from hybridzoo.datamodules.aerofoil_build import prepare_shape, prepare_shapes
    from hybridzoo.physics.airfoil import naca4

    raw = naca4(torch.tensor([0.0, 0.02, 0.04], dtype=torch.float64), 0.4, torch.tensor([0.12, 0.15, 0.09]), 50)
    batch = prepare_shapes(raw, 40)
    for i in range(3):
        assert torch.equal(batch[i], prepare_shape(raw[i], 40, strict=True))
    flat = raw.clone()
    flat[2, :, 1] *= 0.2  # 1.8 % high: below the data set's 3 %
    with pytest.raises(ValueError, match=r"shapes\[2\] is not an aerofoil the data set admits: its height"):
        prepare_shapes(flat, 40, name="shapes")
