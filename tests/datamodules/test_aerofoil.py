import warnings

import numpy as np
import pytest
import torch
from hybridzoo.datamodules import aerofoil_build, xfoil
from hybridzoo.datamodules import aerofoil_features as af
from hybridzoo.datamodules.aerofoil import AerofoilDataModule, load_arrays, shipped_path
from hybridzoo.datamodules.aerofoil_split import near_duplicate_groups, split_foils
from hybridzoo.physics.aerofoil_boundary_layer import aerofoil_boundary_layer
from hybridzoo.physics.airfoil import check_airfoil, naca4_from_code, write_dat
from hybridzoo.physics.native import NativeKernelWarning
from hybridzoo.physics.panel import hess_smith


@pytest.fixture
def xfoil_stand_in(monkeypatch):
    """Builds with a stand-in for run_polar run without XFOIL installed: skip the check that it is."""
    monkeypatch.setattr(xfoil, "require_xfoil", lambda: ["xfoil"])


@pytest.fixture(scope="module")
def shipped():
    dm = AerofoilDataModule(source="shipped", n_panels_per_side=40)
    dm.setup()
    return dm


def test_shipped_data_set_is_sound(shipped):
    a = load_arrays(shipped_path())
    n_foils = len(a["names"])
    assert n_foils >= 100 and len(set(a["names"].tolist())) == n_foils
    check_airfoil(torch.from_numpy(a["coords"]).double(), max_te_gap=0.02)
    assert set(np.unique(a["foil"])) == set(range(n_foils))
    assert len(np.unique(a["re"])) >= 2 and len(np.unique(a["alpha_deg"])) >= 8
    missing = np.isnan(a["cl"])
    assert shipped.describe()["n_missing"] == int(missing.sum())
    assert missing.mean() < 0.3  # non-converged points are recorded, but they must stay a minority
    ok = a["cl"][~missing]
    assert np.all(np.abs(ok) < 2.5)


def test_split_is_by_aerofoil(shipped):
    foils = {k: set(d.tensors[3].tolist()) for k, d in shipped.datasets.items()}
    assert (
        not (foils["train"] & foils["test"])
        and not (foils["train"] & foils["val"])
        and not (foils["val"] & foils["test"])
    )
    for d in shipped.datasets.values():
        assert not torch.isnan(d.tensors[2]).any()
    x = shipped.datasets["train"].tensors[0]
    assert x.shape[1] == af.N_FEATURES
    small = AerofoilDataModule(source="shipped", n_train_foils=10, n_panels_per_side=40)
    small.setup()
    assert len(set(small.datasets["train"].tensors[3].tolist())) == 10
    assert set(small.datasets["test"].tensors[3].tolist()) == foils["test"]
    tr, va, te = split_foils(100, 0.1, 0.2, 0)
    assert len(te) == 20 and len(va) == 10 and len(set(tr) | set(va) | set(te)) == 100


def test_near_copies_of_an_aerofoil_never_straddle_two_splits(shipped):
    # goe432/goe442 (1.4e-4 chords RMS apart) and giiig/giiif (2.4e-4) are one aerofoil under two names: their
    # XFOIL lifts differ by 0.003-0.004. A plain random split put one of each pair in training, one in test.
    names = shipped.names
    split_of = {names[i]: s for s, idx in shipped.split.items() for i in idx}
    for a, b in (("goe432", "goe442"), ("giiig", "giiif")):
        assert split_of[a] == split_of[b]
    groups = near_duplicate_groups(load_arrays(shipped_path())["coords"])
    for g in np.unique(groups):
        assert len({split_of[names[i]] for i in np.flatnonzero(groups == g)}) == 1
    # a chain of near pairs is one group; each group goes where its first member in the random order goes
    line = np.zeros((4, 3, 2))
    line[:, :, 0] = np.array([0.0, 4e-4, 8e-4, 5.0])[:, None]  # 0-1 and 1-2 are near, 0-2 is not, 3 is far
    assert near_duplicate_groups(line).tolist() == [0, 0, 0, 1]
    with pytest.raises(ValueError, match="groups must hold one label per aerofoil"):
        split_foils(10, 0.1, 0.2, 0, groups=np.zeros(9))
    with pytest.raises(ValueError, match="leave no validation and no training aerofoil"):
        split_foils(10, 0.1, 0.2, 0, groups=np.zeros(10))  # one group: all ten went to test
    groups = np.arange(100) // 2  # pairs
    tr, va, te = split_foils(100, 0.1, 0.2, 0, groups=groups)
    assert len(set(tr) | set(va) | set(te)) == 100
    for part in (tr, va, te):
        assert all(groups[i] in set(groups[part]) for i in part) and len(part) % 2 == 0


def test_panel_column_matches_the_panel_method(shipped):
    x, cl_panel, cl, foil = shipped.datasets["test"].tensors
    f = int(foil[0])
    rows = foil == f
    direct = hess_smith(shipped.coords[f].double(), x[rows, af.ALPHA].double()).cl
    torch.testing.assert_close(cl_panel[rows].double(), direct, rtol=1e-4, atol=1e-4)
    # the panel method over-predicts the viscous lift on average, which is what the model corrects
    assert (cl_panel - cl).mean() > 0


def test_numpy_numbers_are_numbers():
    dm = AerofoilDataModule(val_fraction=np.float32(0.1), reynolds=np.array([1e6, 2e6]), alphas=(0, 2))
    assert dm.generation["reynolds"] == [1e6, 2e6] and dm.generation["alphas"] == [0.0, 2.0]
    # tensors and sets, as before the checks; a 0-d array is named, not a len() error
    dm = AerofoilDataModule(reynolds=torch.tensor([1e6, 2e6]), alphas=[torch.tensor(1.0), np.float64(2.0)])
    assert dm.generation["reynolds"] == [1e6, 2e6] and dm.generation["alphas"] == [1.0, 2.0]
    assert AerofoilDataModule(reynolds={1e6}).generation["reynolds"] == [1e6]
    with pytest.raises(TypeError, match="reynolds must be a list of numbers"):
        AerofoilDataModule(reynolds=np.array(1e6))
    for kw in ({"alphas": [0, 0.0]}, {"reynolds": [1e6, 1e6]}):  # the same rows twice
        with pytest.raises(ValueError, match="must hold distinct numbers"):
            AerofoilDataModule(**kw)


def test_bad_arguments():
    with pytest.raises(ValueError, match="test_fraction"):
        AerofoilDataModule(test_fraction=0.7)
    with pytest.raises(ValueError, match="n_train_foils"):
        AerofoilDataModule(n_train_foils=0)
    with pytest.raises(ValueError, match="workers"):
        AerofoilDataModule(workers=64)
    with pytest.raises(ValueError, match="workers"):
        AerofoilDataModule(workers=True)
    with pytest.raises(TypeError, match="naca must be a list of 4-digit strings"):  # "'NoneType' is not iterable"
        AerofoilDataModule(naca=None)
    with pytest.raises(ValueError, match="source"):
        AerofoilDataModule(source="/no/such/file.npz").setup()
    with pytest.raises(ValueError, match="n_train_foils"):
        AerofoilDataModule(n_train_foils=100000, n_panels_per_side=40).setup()
    # checked at construction and named, never truncated (2.7 used to give batches of 2; a bad
    # n_panels_per_side surfaced only at setup, as repanel's n_per_side)
    for kwargs, error in (
        ({"n_panels_per_side": 0}, ValueError),
        ({"n_panels_per_side": 3}, ValueError),  # 7 points: fewer than check_airfoil accepts
        ({"n_panels_per_side": 2.5}, TypeError),
        ({"n_panels_per_side": "60"}, TypeError),
        ({"n_per_side": 0}, ValueError),
        ({"batch_size": 2.7}, TypeError),
        ({"batch_size": "64"}, TypeError),
        ({"batch_size": 0}, ValueError),
        ({"split_seed": -1}, ValueError),
        ({"split_seed": 1.5}, TypeError),
        ({"seed": "0"}, TypeError),
        ({"naca": [10]}, TypeError),  # what YAML makes of naca=[0012]
        ({"naca": "0012"}, TypeError),
        ({"reynolds": 1e6}, TypeError),  # a number where a list goes: it failed as 'float' is not iterable
        ({"reynolds": [1e6, "x"]}, TypeError),
        ({"reynolds": [-1e6]}, ValueError),  # was accepted
        ({"alphas": []}, ValueError),
        ({"alphas": [0.0, float("nan")]}, ValueError),
        ({"val_fraction": True}, TypeError),
    ):
        (name,) = kwargs
        with pytest.raises(error, match=name):
            AerofoilDataModule(**kwargs)


def test_stored_contours_reproduce_the_shipped_ones(shipped):
    # What predict_cl applies to an original contour is what the data build did to it: the shipped
    # contours of NACA aerofoils come back bit for bit from their defining formula, and the data module's
    # panel contours (40 a side here) from those.
    a = load_arrays(shipped_path())
    codes = ("0012", "2412", "6408")
    idx = [shipped.names.index(f"naca{c}") for c in codes]
    originals = torch.stack([naca4_from_code(c, 200, closed_te=False, dtype=torch.float64) for c in codes])
    stored = af.stored_contours(originals, shipped.stored_n_per_side)
    assert shipped.stored_n_per_side == 80
    assert stored.dtype == torch.float32 and torch.equal(stored, torch.from_numpy(a["coords"][idx]))
    assert torch.equal(af.panel_contours(stored, 40).float(), shipped.coords[idx])


def test_build_is_cached_resumable_and_records_missing(tmp_path, monkeypatch, xfoil_stand_in):
    monkeypatch.setenv("HYBRIDZOO_DATA", str(tmp_path))
    calls = []

    def fake_polar(coords, re, alphas, timeout=60.0):  # stands in for XFOIL: checks the bookkeeping only
        calls.append(re)
        a = np.asarray(alphas)
        cl = 0.1 * a
        cl[a > 4] = np.nan  # a non-converged point
        return xfoil.Polar(a, cl, 0 * cl + 0.01, 0 * cl, np.isfinite(cl), re)

    monkeypatch.setattr(xfoil, "run_polar", fake_polar)
    kw = dict(n_uiuc=0, naca=("0012", "2412", "4415"), reynolds=(1e5, 1e6), alphas=(0.0, 5.0), workers=1)
    dm = AerofoilDataModule(source="cache", **kw)
    path = dm.build()
    assert path.exists() and len(calls) == 6
    a = load_arrays(path)
    assert a["cl"].shape == (12,) and int(np.isnan(a["cl"]).sum()) == 6
    assert dm.build() == path and len(calls) == 6  # cached
    dm.build(force=True)  # rebuilt from the finished polars on disk: XFOIL is not rerun
    assert len(calls) == 6
    out = dm.build(out=tmp_path / "copy.npz")
    np.testing.assert_array_equal(load_arrays(out)["cl"], a["cl"])
    precious = tmp_path / "precious.npz"
    precious.write_bytes(b"hand-made")
    fresh = AerofoilDataModule(source="cache", **{**kw, "reynolds": (2e5,)})  # nothing built for it yet
    with pytest.raises(FileExistsError, match="precious.npz"):
        fresh.build(out=precious)
    assert precious.read_bytes() == b"hand-made" and len(calls) == 6  # refused before any XFOIL run
    assert dm.build(out=precious, overwrite=True) == precious
    np.testing.assert_array_equal(load_arrays(precious)["cl"], a["cl"])
    with pytest.raises(IsADirectoryError, match="folder"):  # refused at once, not after the build
        fresh.build(out=tmp_path, overwrite=True)
    assert len(calls) == 6


def test_build_flags_must_be_bools_and_a_users_file_is_kept(tmp_path, monkeypatch):
    # overwrite="no" is truthy: it replaced the file at out; force="no" threw away a sound cache entry
    monkeypatch.setenv("HYBRIDZOO_DATA", str(tmp_path / "data"))
    mine = tmp_path / "mine.npz"
    mine.write_bytes(b"the user's own file")
    dm = AerofoilDataModule(n_uiuc=0, naca=["0012"], reynolds=[1e6], alphas=[0.0], source="cache")
    for kwargs in ({"out": mine, "overwrite": "no"}, {"force": "no"}, {"force": 1}):
        name = "overwrite" if "overwrite" in kwargs else "force"
        with pytest.raises(TypeError, match=f"{name} must be a bool"):
            dm.build(**kwargs)
    assert mine.read_bytes() == b"the user's own file"
    assert not (tmp_path / "data").exists()  # refused before any work


def test_a_forced_rebuild_that_fails_keeps_the_sound_entry(tmp_path, monkeypatch, xfoil_stand_in):
    monkeypatch.setenv("HYBRIDZOO_DATA", str(tmp_path))
    monkeypatch.setattr(xfoil, "run_polar", _fake_polar([]))
    dm = AerofoilDataModule(source="cache", n_uiuc=0, naca=("0012",), reynolds=(1e6,), alphas=(0.0, 2.0), workers=1)
    a = load_arrays(dm.build())

    def interrupted(**kw):
        raise KeyboardInterrupt

    monkeypatch.setattr("hybridzoo.datamodules.aerofoil.build_arrays", interrupted)
    with pytest.raises(KeyboardInterrupt):
        dm.build(force=True)
    assert dm.cache().status() == "ok"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "corrupt data cache" on the way
        np.testing.assert_array_equal(dm.load()["cl"], a["cl"])


def test_a_build_without_xfoil_stops_before_any_polar_is_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRIDZOO_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # neither xfoil nor xvfb-run
    dm = AerofoilDataModule(source="cache", n_uiuc=0, naca=("0012",), reynolds=(1e6,), alphas=(0.0,), workers=1)
    with pytest.raises(xfoil.XfoilMissing, match="xfoil and xvfb-run are required"):
        dm.build()
    assert dm.cache().status() == "missing" and not list(tmp_path.rglob("*.json"))
    # XFOIL gone in the middle of a build: the polar is not written down as XFOIL's verdict either
    monkeypatch.setattr(xfoil, "require_xfoil", lambda: ["xfoil"])

    def uninstalled(coords, re, alphas, timeout=60.0):
        raise xfoil.XfoilMissing("xfoil and xvfb-run are required")

    monkeypatch.setattr(xfoil, "run_polar", uninstalled)
    work = tmp_path / "polars"
    with pytest.raises(xfoil.XfoilMissing):
        aerofoil_build.build_arrays(n_uiuc=0, naca=["0012"], reynolds=[1e6], alphas=[0.0], n_per_side=40, seed=0,
                                    workers=1, work_dir=work, progress=False)
    assert not list(work.glob("*.json"))


@pytest.mark.skipif(not xfoil.xfoil_available(), reason="xfoil and xvfb-run are not installed")
def test_tiny_real_build(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRIDZOO_DATA", str(tmp_path))
    dm = AerofoilDataModule(
        source="cache", n_uiuc=0, naca=("2412",), reynolds=(1e6,), alphas=(0.0, 5.0), workers=1
    )
    a = load_arrays(dm.build())
    np.testing.assert_allclose(a["cl"], [0.24, 0.81], atol=0.01)


def test_input_columns_are_the_shape_the_flow_and_the_boundary_layer(shipped):
    x, cl_panel, _, foil = shipped.datasets["test"].tensors
    rows = (foil == int(foil[0])).nonzero().squeeze(-1)[:4]
    coords = shipped.coords[int(foil[0])].double()[None]
    alpha, re = x[rows, af.ALPHA].double()[None], (10 ** x[rows, af.LOG_RE].double())[None]
    got, panel = af.aerofoil_inputs(coords, alpha, re)
    torch.testing.assert_close(got[0].float(), x[rows], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(panel[0].float(), cl_panel[rows], rtol=1e-4, atol=1e-4)
    layer = aerofoil_boundary_layer(hess_smith(coords, alpha), re).features()
    torch.testing.assert_close(got[..., af.N_PROBLEM :], layer)
    assert got.shape[-1] == af.N_FEATURES == af.N_PROBLEM + 11
    with pytest.raises(ValueError, match="alpha"):
        af.aerofoil_inputs(coords, alpha, re[:, :2])
    with pytest.raises(ValueError, match="re"):
        af.aerofoil_inputs(coords, alpha, -re)


def _fake_polar(calls):
    def run(coords, re, alphas, timeout=60.0):
        calls.append(re)
        a = np.asarray(alphas, dtype=float)
        return xfoil.Polar(a, np.full(a.shape, re / 1e6), np.full(a.shape, 0.01), 0 * a, np.ones(a.shape, bool), re)

    return run


def test_close_reynolds_numbers_are_kept_apart(tmp_path, monkeypatch, xfoil_stand_in):
    calls = []
    monkeypatch.setattr(xfoil, "run_polar", _fake_polar(calls))
    work = tmp_path / "polars"
    work.mkdir()
    # a polar file named the old way ({re:.0e}) must not be picked up for any Reynolds number
    (work / "0000_naca0012_2e+05.json").write_text('{"cl": [99, 99], "cd": [99, 99], "error": ""}')
    kw = dict(n_uiuc=0, naca=["0012"], alphas=[0.0, 2.0], n_per_side=40, seed=0, workers=1, progress=False)
    arr = aerofoil_build.build_arrays(reynolds=[2e5, 2.4e5, 1.5e6, 2e6], work_dir=work, **kw)
    assert sorted(calls) == [2e5, 2.4e5, 1.5e6, 2e6]
    assert arr["cl"].shape == (8,) and sorted(set(arr["re"].tolist())) == [2e5, 2.4e5, 1.5e6, 2e6]
    np.testing.assert_allclose(arr["cl"], arr["re"] / 1e6)  # each row carries its own polar
    with pytest.raises(ValueError, match="reynolds"):
        aerofoil_build.build_arrays(reynolds=[1e6, 1e6 + 1e-3], work_dir=work, **kw)


def test_geometric_duplicates_under_other_names_are_dropped(tmp_path, monkeypatch):
    uiuc = tmp_path / "uiuc"
    uiuc.mkdir()
    # UIUC ships copies of one shape under several names, and NACA shapes under other names
    write_dat(uiuc / "foila.dat", naca4_from_code("4415", 120, closed_te=False, dtype=torch.float64), "a")
    write_dat(uiuc / "foil-a.dat", naca4_from_code("4415", 120, closed_te=False, dtype=torch.float64), "a")
    write_dat(uiuc / "n0012.dat", naca4_from_code("0012", 150, closed_te=False, dtype=torch.float64), "0012")
    write_dat(uiuc / "other.dat", naca4_from_code("2408", 120, closed_te=False, dtype=torch.float64), "b")
    monkeypatch.setattr(aerofoil_build, "uiuc_database", lambda: uiuc)
    dropped = []
    names, shapes = aerofoil_build._collect_shapes(10, ["0012", "0012"], 80, 0, dropped)
    assert names[0] == "naca0012" and len(names) == 3 and "other" in names
    assert len({"foila", "foil-a"} & set(names)) == 1 and "n0012" not in names
    assert sorted(d for d, _ in dropped) == sorted({"foila", "foil-a"} - set(names)) + ["n0012"]
    assert len(aerofoil_build._collect_shapes(2, ["0012"], 80, 0)[0]) == 3  # duplicates do not count
    c = torch.stack(shapes)
    dist = (c[:, None] - c[None]).square().sum(-1).mean(-1).sqrt() + torch.eye(len(c))
    assert dist.min() > aerofoil_build.DUPLICATE_RMS


def test_shipped_data_set_has_no_geometric_duplicates():
    # so dropping duplicates at build time leaves the shipped set (and its split) as it is
    c = torch.from_numpy(load_arrays(shipped_path())["coords"]).double()
    dist = (c[:, None] - c[None]).square().sum(-1).mean(-1).sqrt() + torch.eye(len(c))
    assert dist.min() > aerofoil_build.DUPLICATE_RMS


def test_describe_reports_the_loaded_data_and_warns_on_ignored_settings(shipped, tmp_path):
    d = shipped.describe()
    a = load_arrays(shipped_path())
    assert d["alpha_range_deg"] == [a["alpha_deg"].min(), a["alpha_deg"].max()]
    assert d["reynolds"] == sorted(set(a["re"].tolist()))
    keep = a["foil"] < 4  # a small copy of the shipped data, as a file source
    small = {k: v[:4] if k in ("names", "coords") else v[keep] for k, v in a.items()}
    path = tmp_path / "small.npz"
    np.savez(path, **small)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the defaults match the data: no warning
        warnings.simplefilter("ignore", NativeKernelWarning)  # (where no compiler builds the kernel: not this test's)
        AerofoilDataModule(source=str(path), n_panels_per_side=40).setup()
    dm = AerofoilDataModule(source=str(path), n_panels_per_side=40, alphas=(0.0, 5.0), reynolds=(3e6,))
    with pytest.warns(UserWarning, match=r"alphas=\[0.0, 5.0\].*reynolds=\[3000000.0\].*ignored"):
        dm.setup()
    d = dm.describe()
    assert d["alpha_range_deg"] == [-4.0, 10.0] and d["reynolds"] == [2e5, 1e6, 5e6, 1e7]
    assert (d["n_per_side"], d["n_panels_per_side"]) == (80, 40)  # the file's contours, the panel method's
    assert d["n_rows"] == int(keep.sum())
    # which bytes were loaded: what a model card keeps beside the init arguments
    import hashlib

    assert d["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert shipped.describe()["sha256"] == hashlib.sha256(shipped_path().read_bytes()).hexdigest()


def test_split_leaves_training_aerofoils():
    tr, va, te = split_foils(3, 0.1, 0.2, 0)
    assert len(tr) == len(va) == len(te) == 1
    with pytest.raises(ValueError, match="n_foils"):
        split_foils(2, 0.1, 0.2, 0)


def test_a_resumed_build_reruns_only_the_polars_a_timeout_cut_short(tmp_path, monkeypatch, xfoil_stand_in):
    calls = []

    def run(coords, re, alphas, timeout=60.0):
        calls.append(re)
        a = np.asarray(alphas, dtype=float)
        cl = np.array([0.1, np.nan])  # 2 deg missing: XFOIL's verdict, or a lack of time
        late = re == 1e6 and calls.count(re) == 1  # the first 1e6 run is killed at the timeout
        return xfoil.Polar(a, cl, 0 * cl + 0.01, 0 * cl, np.isfinite(cl), re, timed_out=late)

    def timeout_no_polar(coords, re, alphas, timeout=60.0):
        calls.append(re)
        raise xfoil.XfoilTimeout("XFOIL wrote no polar")

    kw = dict(n_uiuc=0, naca=["0012"], alphas=[0.0, 2.0], n_per_side=40, seed=0, workers=1, progress=False,
              work_dir=tmp_path / "polars")
    monkeypatch.setattr(xfoil, "run_polar", run)
    aerofoil_build.build_arrays(reynolds=[2e5, 1e6], **kw)
    assert sorted(calls) == [2e5, 1e6]
    aerofoil_build.build_arrays(reynolds=[2e5, 1e6], **kw)  # resumed: the timed-out polar only
    assert sorted(calls) == [2e5, 1e6, 1e6]
    aerofoil_build.build_arrays(reynolds=[2e5, 1e6], **kw)  # now finished: nothing is rerun
    assert len(calls) == 3
    monkeypatch.setattr(xfoil, "run_polar", timeout_no_polar)
    arr = aerofoil_build.build_arrays(reynolds=[3e6], **kw)
    assert np.isnan(arr["cl"]).all() and calls[-1] == 3e6
    monkeypatch.setattr(xfoil, "run_polar", run)
    arr = aerofoil_build.build_arrays(reynolds=[3e6], **kw)
    assert calls[-1] == 3e6 and len(calls) == 5 and arr["cl"][0] == 0.1


def test_contour_preparation_takes_empty_batches_and_names_a_too_coarse_resolution():
    from hybridzoo.datamodules.aerofoil_features import panel_contours, stored_contours

    assert stored_contours(torch.zeros(0, 161, 2), 80).shape == (0, 161, 2)
    assert panel_contours(torch.zeros(0, 161, 2), 60).shape == (0, 121, 2)
    with pytest.raises(ValueError, match="n_panels_per_side must be >= 4"):
        panel_contours(torch.zeros(1, 161, 2), 2)


@pytest.mark.parametrize(("change", "match"), [
    (lambda a: {**a, "names": a["names"][:300]}, r"names has shape \(300,\) for 342"),  # dropped 42 aerofoils' rows
    (lambda a: {**a, "names": a["names"][0]}, r"names has shape \(\) for 342"),
    (lambda a: {**a, "coords": a["coords"][0, 0, 0]}, "coords has shape"),
    (lambda a: {**a, "cl": a["cl"][:-1]}, "row arrays must be 1-D of one length"),
    (lambda a: {**a, "foil": a["foil"] + 1}, "foil must index the 342 contours"),
    (lambda a: {**a, "coords": a["coords"][..., 0]}, "coords has shape"),
    # NaN marks a missing point; infinite lifts became training targets
    (lambda a: {**a, "cl": np.where(np.arange(len(a["cl"])) % 100 == 0, np.inf, a["cl"])}, "cl holds 206 infinite"),
    (lambda a: {**a, "alpha_deg": np.where(np.arange(len(a["cl"])) == 7, np.nan, a["alpha_deg"])},
     "alpha_deg holds 1 NaN or infinite"),
    (lambda a: {**a, "re": a["re"].astype(np.int64)}, "re must hold real floating-point numbers"),
])
def test_a_data_file_whose_arrays_disagree_is_refused(tmp_path, change, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **change(dict(load_arrays(shipped_path()))))
    with pytest.raises(ValueError, match=match):
        load_arrays(path)


def test_a_file_that_is_no_npz_is_named(tmp_path):
    path = tmp_path / "text.npz"
    path.write_text("not an archive")
    with pytest.raises(ValueError, match="text.npz' is not a readable .npz data set"):
        load_arrays(path)
    dm = AerofoilDataModule(source=path)  # a Path: refused as "not a path" before
    with pytest.raises(ValueError, match="not a readable .npz"):
        dm.setup()
