import functools
import hashlib
import http.server
import threading

import numpy as np
import pytest
import torch
from hybridzoo.datamodules.download import ChecksumError
from hybridzoo.datamodules.idx import IDXError, write_idx
from hybridzoo.datamodules.mnist import MNIST_FILES, MNISTDataModule


def _write_fake_mnist(folder, n_train=40, n_test=12, gz=True, seed=0):
    """Small IDX files in MNIST's layout; returns {gz file name: sha256} and the arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": (np.arange(n_test) % 10).astype(np.uint8),
    }
    sums = {}
    for name, arr in arrays.items():
        path = write_idx(folder / (name if gz else name.removesuffix(".gz")), arr)
        sums[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return sums, arrays


@pytest.fixture
def mirror(tmp_path):
    """A loopback HTTP server serving fake MNIST files; yields (base URL, sha256 map, arrays)."""
    served = tmp_path / "served"
    served.mkdir()
    sums, arrays = _write_fake_mnist(served)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(served))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", sums, arrays
    finally:
        server.shutdown()
        server.server_close()


def test_download_from_loopback_mirror_then_read(tmp_path, mirror):
    url, sums, arrays = mirror
    # The first mirror answers 404 for every file; the second one serves them.
    dm = MNISTDataModule(
        data_dir=str(tmp_path / "data"),
        download=True,
        mirrors=[url + "/missing/", url + "/"],
        sha256=sums,
        batch_size=8,
        val_size=10,
    )
    dm.prepare_data()
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == sorted(MNIST_FILES)
    dm.setup("fit")
    assert len(dm.splits["train"]) == 30 and len(dm.splits["val"]) == 10 and len(dm.splits["test"]) == 12
    x, y = dm.splits["test"].tensors
    assert x.shape == (12, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    np.testing.assert_allclose(x[:, 0].numpy() * 255.0, arrays["t10k-images-idx3-ubyte.gz"], atol=1e-3)
    xb, yb = next(iter(dm.train_dataloader()))
    assert xb.shape == (8, 1, 28, 28) and yb.shape == (8,)
    # train + val is exactly the training file, with no image twice
    all_train = torch.cat([dm.splits["train"].tensors[1], dm.splits["val"].tensors[1]])
    assert torch.equal(
        all_train.sort().values,
        torch.from_numpy(arrays["train-labels-idx1-ubyte.gz"].astype(np.int64)).sort().values,
    )


def test_download_with_checksum_mismatch_is_refused(tmp_path, mirror):
    url, sums, _ = mirror
    bad = dict(sums)
    bad["train-images-idx3-ubyte.gz"] = "0" * 64
    dm = MNISTDataModule(data_dir=str(tmp_path / "data"), download=True, mirrors=[url], sha256=bad)
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        dm.prepare_data()
    assert not (tmp_path / "data" / "train-images-idx3-ubyte.gz").exists()
    assert not [p for p in (tmp_path / "data").iterdir() if p.name.endswith(".part")]


def test_default_checksums_refuse_fake_files(tmp_path, mirror):
    url, _, _ = mirror  # the served files are not the real MNIST, so the official sha256 must refuse them
    dm = MNISTDataModule(data_dir=str(tmp_path / "data"), download=True, mirrors=[url])
    with pytest.raises(ChecksumError):
        dm.prepare_data()


def test_reads_uncompressed_files_offline(tmp_path):
    _write_fake_mnist(tmp_path, gz=False)
    dm = MNISTDataModule(data_dir=str(tmp_path), val_size=5)
    dm.prepare_data()  # nothing to do, no network
    dm.setup()
    assert len(dm.splits["train"]) == 35 and len(dm.splits["test"]) == 12


def test_missing_and_inconsistent_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True"):
        MNISTDataModule(data_dir=str(tmp_path)).prepare_data()
    _write_fake_mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(5, dtype=np.uint8))
    dm = MNISTDataModule(data_dir=str(tmp_path), val_size=5)
    with pytest.raises(IDXError, match="12 test images but 5 labels"):
        dm.setup()
    with pytest.raises(ValueError, match="val_size"):
        MNISTDataModule(data_dir=str(tmp_path), val_size=40).setup()


def test_bad_arguments():
    with pytest.raises(ValueError, match="sha256"):
        MNISTDataModule(sha256={"nope.gz": "0" * 64})
    with pytest.raises(TypeError, match="mirrors"):
        MNISTDataModule(mirrors="http://example.org/")
    with pytest.raises(ValueError, match="val_size"):
        MNISTDataModule(val_size=-1)



@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"seed": "0"}, TypeError, "seed"),
        ({"seed": 1.5}, TypeError, "seed"),
        ({"seed": -1}, ValueError, "seed"),
        ({"num_workers": -1}, ValueError, "num_workers"),
        ({"num_workers": "2"}, ValueError, "num_workers"),
        ({"download": "no"}, TypeError, "download"),  # a truthy string would allow the network
        ({"data_dir": 5}, TypeError, "data_dir"),
    ],
)
def test_bad_arguments_are_refused_at_construction(kwargs, error, match):
    with pytest.raises(error, match=match):
        MNISTDataModule(**kwargs)


def test_predict_dataloader_is_the_test_split_in_order(tmp_path):
    _, arrays = _write_fake_mnist(tmp_path)
    dm = MNISTDataModule(data_dir=str(tmp_path), val_size=5, batch_size=5)
    y = torch.cat([b[1] for b in dm.predict_dataloader()])
    assert torch.equal(y, torch.from_numpy(arrays["t10k-labels-idx1-ubyte.gz"].astype(np.int64)))


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"mirrors": []}, ValueError, "mirrors must name at least one"),
        ({"mirrors": ["ftp://example.org/"]}, ValueError, "mirrors must be http"),
        ({"mirrors": 5}, TypeError, "mirrors"),
        ({"data_dir": ""}, ValueError, "data_dir must be a non-empty path"),  # was the default folder
        ({"sha256": "train-images-idx3-ubyte.gz"}, TypeError, "sha256 must be a dict"),  # was "unknown ['-', ...]"
        ({"sha256": {"train-images-idx3-ubyte.gz": 123}}, TypeError, r"sha256\['train-images-idx3-ubyte.gz'\]"),
        ({"sha256": {"t10k-labels-idx1-ubyte.gz": "abc"}}, ValueError, "64 hexadecimal"),
    ],
)
def test_mirrors_data_dir_and_sha256_are_checked_at_construction(kwargs, error, match):
    with pytest.raises(error, match=match):
        MNISTDataModule(**kwargs)


def test_upper_case_digests_and_schemes_are_accepted(tmp_path, mirror):
    url, sums, _ = mirror
    upper = {k: v.upper() for k, v in sums.items()}
    dm = MNISTDataModule(data_dir=str(tmp_path / "data"), download=True, mirrors=[url.replace("http", "HTTP")],
                         sha256=upper, val_size=10)
    dm.prepare_data()
    dm.setup()
    assert len(dm.splits["test"]) == 12


def test_corrupt_gzip_file_is_an_idx_error(tmp_path):
    _write_fake_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    data = bytearray(path.read_bytes())
    for i in range(12, 40):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IDXError, match="train-images-idx3-ubyte.gz: corrupt or truncated gzip"):
        MNISTDataModule(data_dir=str(tmp_path), val_size=5).setup()
