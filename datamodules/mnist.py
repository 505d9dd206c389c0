"""MNIST from its standard IDX files, read from a folder or downloaded from mirrors with sha256 checks.

Nothing here needs a network unless ``download=True`` and the files are missing: point ``data_dir`` at
a folder holding the four files (``train-images-idx3-ubyte[.gz]`` ...), as distributed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from hybridzoo.datamodules.cache import data_root
from hybridzoo.datamodules.download import check_sha256, download, is_supported_url
from hybridzoo.datamodules.idx import IDXError, read_idx
from hybridzoo.datamodules.splits import SplitDataModule, check_num_workers, check_seed
from hybridzoo.physics.validation import check_bool, check_positive_int
from torch.utils.data import TensorDataset

#: The four MNIST files (gzipped, as served) and their sha256.
MNIST_FILES: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
#: Mirrors tried in order; each is a URL prefix to which the file name is appended.
MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)


def find_idx_file(data_dir: Path, gz_name: str) -> Path | None:
    """Find the uncompressed (first) or gzipped copy of ``gz_name`` in ``data_dir``; ``None`` if absent."""
    for candidate in (data_dir / gz_name.removesuffix(".gz"), data_dir / gz_name):
        if candidate.is_file():
            return candidate
    return None


def load_mnist_split(data_dir: str | os.PathLike[str], split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Read the ``"train"`` or ``"test"`` IDX pair from ``data_dir``.

    Returns:
        images ``(N, 1, H, W)`` float32 in [0, 1] and labels ``(N,)`` int64.

    Raises:
        FileNotFoundError: a file is missing. IDXError: a file is corrupt or the pair is inconsistent.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    prefix = "train" if split == "train" else "t10k"
    data_dir = Path(data_dir)
    paths = {}
    for kind, nd in (("images", 3), ("labels", 1)):
        name = f"{prefix}-{kind}-idx{nd}-ubyte.gz"
        path = find_idx_file(data_dir, name)
        if path is None:
            raise FileNotFoundError(f"MNIST file {name.removesuffix('.gz')}[.gz] not found in {data_dir}")
        paths[kind] = path
    images, labels = read_idx(paths["images"]), read_idx(paths["labels"])
    if images.ndim != 3 or images.dtype != np.uint8:
        raise IDXError(
            f"{paths['images']}: expected uint8 images of shape (N, H, W), got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise IDXError(
            f"{paths['labels']}: expected uint8 labels of shape (N,), got {labels.dtype} {labels.shape}"
        )
    if len(images) != len(labels):
        raise IDXError(f"{data_dir}: {len(images)} {split} images but {len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise IDXError(f"{paths['labels']}: labels must lie in 0..9, found {int(labels.max())}")
    x = torch.from_numpy(images).float().div_(255.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))


class MNISTDataModule(SplitDataModule):
    """MNIST handwritten digits (28×28) from IDX files; optional checksummed download.

    Batches are ``(images, labels)``: images ``(B, 1, 28, 28)`` float32 in [0, 1], labels ``(B,)`` int64.
    The last ``val_size`` images of a seeded permutation of the training set are used for validation;
    the official 10,000 test images are the test split.

    Args:
        data_dir: folder with the IDX files (default, for ``None``: ``$HYBRIDZOO_DATA/mnist``).
        download: fetch missing files from ``mirrors`` (needs network); otherwise a missing file is an error.
        mirrors: a non-empty list of URL prefixes (``http``, ``https`` or ``file``) tried in order; the file
            name is appended.
        sha256: expected sha256 of gzipped files, ``{file name: 64 hex characters}`` (default, and for the
            names it leaves out: the official files, :data:`MNIST_FILES`).
        batch_size: batch size of every loader.
        val_size: training images held out for validation.
        seed: seed of the validation split and the training shuffle, in ``[0, 2**32)``.
        num_workers: DataLoader workers.
    """

    num_classes = 10
    image_shape = (1, 28, 28)

    def __init__(
        self,
        data_dir: str | None = None,
        download: bool = False,
        mirrors: list[str] | None = None,
        sha256: dict[str, str] | None = None,
        batch_size: int = 128,
        val_size: int = 5000,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        check_positive_int("batch_size", batch_size)
        if data_dir is not None and not isinstance(data_dir, (str, os.PathLike)):
            raise TypeError(f"data_dir must be a path (str) or None, got {type(data_dir).__name__}")
        if data_dir is not None and not os.fspath(data_dir):
            # "" used to mean the default folder; None says that, and "" is more likely a missing setting
            raise ValueError("data_dir must be a non-empty path, or None for $HYBRIDZOO_DATA/mnist; got ''")
        check_bool("download", download)  # "no" would allow network access
        check_seed("seed", seed)
        check_num_workers(num_workers)
        if isinstance(val_size, bool) or not isinstance(val_size, int) or val_size < 0:
            raise ValueError(f"val_size must be a non-negative int, got {val_size!r}")
        if mirrors is not None:
            if not isinstance(mirrors, (list, tuple)) or not all(isinstance(m, str) for m in mirrors):
                raise TypeError(f"mirrors must be a list of URL prefixes (str), got {mirrors!r:.200}")
            if not mirrors:  # no mirror would make download=True fail only once a file is missing
                raise ValueError("mirrors must name at least one URL prefix, got []")
            bad = [m for m in mirrors if not is_supported_url(m)]
            if bad:
                raise ValueError(f"mirrors must be http(s) or file URL prefixes, got {bad}")
        if sha256 is not None:
            # a str is iterable too: its characters were reported as "unknown file names"
            if not isinstance(sha256, Mapping):
                raise TypeError(
                    f"sha256 must be a dict {{file name: hex digest}}, got {type(sha256).__name__} {sha256!r:.80}"
                )
            unknown = [k for k in sha256 if k not in MNIST_FILES]
            if unknown:
                raise ValueError(
                    f"sha256 has unknown file names {unknown}; expected some of {sorted(MNIST_FILES)}"
                )
            for name, digest in sha256.items():
                check_sha256(f"sha256[{name!r}]", digest)
        self.save_hyperparameters()
        self.data_dir = Path(data_dir).expanduser() if data_dir is not None else data_root() / "mnist"
        self.mirrors = list(mirrors) if mirrors is not None else list(MNIST_MIRRORS)
        self.checksums = {**MNIST_FILES, **(sha256 or {})}

    def prepare_data(self) -> None:
        """Make sure the four files are in ``data_dir``, downloading (checksummed) when allowed."""
        missing = [n for n in MNIST_FILES if find_idx_file(self.data_dir, n) is None]
        if not missing:
            return
        if not self.hparams.download:
            raise FileNotFoundError(
                f"MNIST files {missing} are missing from {self.data_dir}; put the IDX files there "
                "(gzipped or not) or pass download=True"
            )
        for name in missing:
            download(
                [m.rstrip("/") + "/" + name for m in self.mirrors], self.data_dir / name, self.checksums[name]
            )

    def setup(self, stage: str | None = None) -> None:
        """Read the IDX files and split off validation."""
        if self.splits:
            return
        x, y = load_mnist_split(self.data_dir, "train")
        val_size = self.hparams.val_size
        if val_size >= len(y):
            raise ValueError(f"val_size={val_size} leaves no training images (the training set has {len(y)})")
        perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(self.hparams.seed))
        train, val = perm[: len(y) - val_size], perm[len(y) - val_size :]
        self.splits["train"] = TensorDataset(x[train], y[train])
        self.splits["val"] = TensorDataset(x[val], y[val])
        self.splits["test"] = TensorDataset(*load_mnist_split(self.data_dir, "test"))
