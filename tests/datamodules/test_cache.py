import json
import os
import stat

import numpy as np
import pytest
from hybridzoo.datamodules.cache import ArrayCache, atomic_write_bytes, config_hash


def _arrays():
    return {"a": np.arange(6.0).reshape(2, 3), "b": np.array([1, 2, 3])}


def test_round_trip_and_manifest(tmp_path):
    c = ArrayCache("demo", {"n": 3}, "1", root=tmp_path)
    assert c.status() == "missing" and c.load() is None
    c.save(_arrays())
    assert c.status() == "ok"
    out = c.load()
    np.testing.assert_array_equal(out["a"], _arrays()["a"])
    manifest = json.loads(c.manifest_path.read_text())
    assert manifest["generator_version"] == "1" and manifest["config"] == {"n": 3}
    assert len(manifest["sha256"]) == 64
    assert not [p for p in c.dir.iterdir() if p.name.endswith(".tmp")]


def test_corrupt_cache_is_detected_and_rebuilt(tmp_path):
    c = ArrayCache("demo", {"n": 3}, "1", root=tmp_path)
    c.save(_arrays())
    data = bytearray(c.arrays_path.read_bytes())
    data[-10] ^= 0xFF
    c.arrays_path.write_bytes(bytes(data))
    assert c.status() == "corrupt"
    calls = []

    def build():
        calls.append(1)
        return _arrays()

    with pytest.warns(UserWarning, match="corrupt data cache"):
        out = c.load_or_build(build)
    assert calls == [1] and c.status() == "ok"
    np.testing.assert_array_equal(out["b"], [1, 2, 3])


def test_truncated_manifest_is_corrupt(tmp_path):
    c = ArrayCache("demo", {"n": 3}, "1", root=tmp_path)
    c.save(_arrays())
    c.manifest_path.write_text("{not json")
    assert c.status() == "corrupt"


def test_stale_version_is_not_used(tmp_path):
    ArrayCache("demo", {"n": 3}, "1", root=tmp_path).save(_arrays())
    newer = ArrayCache("demo", {"n": 3}, "2", root=tmp_path)
    assert newer.status() == "missing"  # another version hashes to another folder
    # a manifest from another generator version in the same folder is stale
    old = ArrayCache("demo", {"n": 3}, "1", root=tmp_path)
    m = json.loads(old.manifest_path.read_text())
    m["generator_version"] = "0"
    old.manifest_path.write_text(json.dumps(m))
    assert old.status() == "stale"
    with pytest.warns(UserWarning, match="stale"):
        assert old.load() is None


def test_config_hash_is_order_independent():
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_arrays_hash_by_their_exact_values():
    # str() of an array rounds and elides, so these used to share a cache folder
    long = np.arange(2000.0)
    assert config_hash({"x": long}) != config_hash({"x": long + (np.arange(2000) == 1000)})
    assert config_hash({"x": np.array([100.0, 210.0])}) != config_hash({"x": np.array([100.0, 210.000000004])})
    assert config_hash({"x": np.array([1.5, 2.0])}) == config_hash({"x": [1.5, 2.0]})
    c = ArrayCache("demo", {"x": np.array([[1.0, 2.5]])}, "1")
    assert c.config == {"x": [[1.0, 2.5]]}


def test_plain_configs_hash_as_before():
    # the keys of existing caches (lists, tuples, numbers, strings) must not move
    cfg = {"re": [100.0, 150.0], "center": (2.0, 2.0), "dt": 0.1, "n": 3, "name": "x", "none": None}
    assert config_hash(cfg) == "922b00f851ab1532"
    assert ArrayCache("demo", cfg, "1").hash == "f40276f93ec1488e"


@pytest.mark.parametrize("text", ["null", "[]", '"x"', "1", "true"])
def test_manifest_that_is_not_an_object_is_corrupt_and_rebuilt(tmp_path, text):
    c = ArrayCache("demo", {"n": 3}, "1", root=tmp_path)
    c.save(_arrays())
    c.manifest_path.write_text(text)  # valid JSON, but no manifest: used to raise AttributeError
    assert c.status() == "corrupt"
    with pytest.warns(UserWarning, match="corrupt data cache"):
        out = c.load_or_build(_arrays)
    np.testing.assert_array_equal(out["b"], _arrays()["b"])
    assert c.status() == "ok"


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_atomic_write_gives_the_mode_the_umask_allows_and_leaves_no_temp_file(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        target = tmp_path / "sub" / "file.bin"
        atomic_write_bytes(target, b"first")
        atomic_write_bytes(target, b"second")  # replaces it whole
    finally:
        os.umask(old)
    assert target.read_bytes() == b"second"
    assert stat.S_IMODE(target.stat().st_mode) == mode
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]


def test_arrays_without_a_manifest_are_reported_and_rebuilt(tmp_path):
    c = ArrayCache("demo", {"n": 3}, "1", root=tmp_path)
    c.save(_arrays())
    c.manifest_path.unlink()  # e.g. a write cut short between the two files
    assert c.status() == "corrupt"
    with pytest.warns(UserWarning, match="corrupt data cache"):
        assert c.load() is None


def test_a_manifest_of_another_config_is_stale(tmp_path):
    c = ArrayCache("demo", {"n": 3}, "1", root=tmp_path)
    c.save(_arrays())
    m = json.loads(c.manifest_path.read_text())
    m["config_hash"] = "0" * 16  # a folder copied or renamed from another configuration
    c.manifest_path.write_text(json.dumps(m))
    assert c.status() == "stale"
