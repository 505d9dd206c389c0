"""Building, caching and falling back from the compiled kernels."""

import os
import shutil

import pytest
import torch
from hybridzoo.physics import native
from hybridzoo.physics.boundary_layer import _march_torch, march

KERNEL = "boundary_layer_march"


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """An empty kernel cache and no kernel loaded in this process, before and after the test."""
    monkeypatch.setenv("HYBRIDZOO_DATA", str(tmp_path))
    monkeypatch.setenv("HYBRIDZOO_NATIVE", "1")
    native._load.cache_clear()
    yield tmp_path / "kernels"
    native._load.cache_clear()


def needs_compiler():
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        pytest.skip("no C++ compiler here")


def test_built_once_into_the_cache_and_reused(fresh):
    needs_compiler()
    path = native.build(KERNEL)
    assert path.parent == fresh and path.name.startswith(KERNEL) and path.suffix == ".so"
    assert [p.name for p in fresh.iterdir()] == [path.name]  # no temporary left behind
    stamp = path.stat().st_mtime_ns
    assert native.build(KERNEL) == path and path.stat().st_mtime_ns == stamp  # not rebuilt
    assert native.load(KERNEL) is not None


def test_a_damaged_cached_library_is_rebuilt(fresh):
    needs_compiler()
    path = native.build(KERNEL)
    path.write_bytes(b"not a shared library")
    assert native.load(KERNEL) is not None
    assert path.read_bytes() != b"not a shared library"


def test_no_compiler_warns_once_and_the_torch_version_runs(fresh, monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler-hz")
    with pytest.raises(native.NativeUnavailable, match="no-such-compiler-hz"):
        native.build(KERNEL)
    s = torch.linspace(1e-3, 1.0, 50, dtype=torch.float64)[None]
    ue = 1 + 0.1 * s
    with pytest.warns(native.NativeKernelWarning, match="torch version runs instead"):
        layer = march(ue, s, 1e6)
    torch.testing.assert_close(layer.theta, _march_torch(ue, s, torch.tensor([1e6], dtype=s.dtype), None).theta)
    assert not fresh.exists() or not any(fresh.iterdir())


def test_a_failing_build_reports_the_compiler_output(fresh, monkeypatch):
    needs_compiler()
    monkeypatch.setattr(native, "COMPILE_FLAGS", (*native.COMPILE_FLAGS, "-include", "no_such.h"))
    expected = "(?s)building the boundary_layer_march kernel failed.*no_such.h: No such file"
    with pytest.raises(native.NativeUnavailable, match=expected):
        native.build(KERNEL)
    assert not any(fresh.iterdir())  # the failed build's temporary folder is gone


def test_a_compiler_command_with_a_launcher(fresh, monkeypatch):
    needs_compiler()
    monkeypatch.setenv("CXX", f"env {os.environ.get('CXX', 'c++')}")  # as "ccache g++" would be given
    assert native.load(KERNEL) is not None


def test_a_folder_others_can_write_to_is_refused(fresh, monkeypatch):
    needs_compiler()
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    fresh.mkdir(parents=True)
    fresh.chmod(0o777)
    with pytest.raises(native.NativeUnavailable, match="not private to this user"):
        native.build(KERNEL)
    assert not any(fresh.iterdir())
    with pytest.warns(native.NativeKernelWarning, match="not private"):
        assert native.load(KERNEL) is None


def test_turned_off_by_the_environment(fresh, monkeypatch):
    monkeypatch.setenv("HYBRIDZOO_NATIVE", "0")
    assert not native.enabled() and native.load(KERNEL) is None
    assert not fresh.exists()  # nothing built
