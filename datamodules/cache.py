"""A content-checked on-disk cache for generated data sets.

Each entry lives in ``$HYBRIDZOO_DATA/<name>/<config-hash>/`` (default ``~/.cache/hybridzoo``) as
``arrays.npz`` plus ``manifest.json`` (generator version, config, config hash, sha256 of the arrays
file). Writes are atomic (temporary file, then ``os.replace``); a cache whose manifest is missing,
stale (other generator version or config) or whose checksum does not match is reported and rebuilt,
never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sys
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np


def data_root() -> Path:
    """Root folder of the data cache: ``$HYBRIDZOO_DATA`` or ``~/.cache/hybridzoo``."""
    env = os.environ.get("HYBRIDZOO_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "hybridzoo"


def check_cache_dir(name: str, value: object) -> Path | None:
    """Check a cache root argument: ``None`` (:func:`data_root`) or a path that is not an existing file.

    Checked when a DataModule is made, so that a bad path fails at once, not after minutes of generation.
    """
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike) or None, got {type(value).__name__}")
    if not os.fspath(value):  # Path("") is ".": the data would be written into the working directory
        raise ValueError(f"{name} must be a folder, got an empty path (None: the default cache)")
    path = Path(value).expanduser()
    # the path, or the nearest of its parents that exists (it will be created below that), must be a folder
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        where = "is a file" if existing == path else f"lies under the file {str(existing)!r}"
        raise ValueError(f"{name}={str(value)!r} {where}, not a folder: give the folder to cache the data in")
    return path


def _json_default(value: Any) -> Any:
    """JSON form of a value ``json`` cannot encode: arrays (numpy, torch) as nested lists, else ``str``.

    ``str`` of an array rounds and elides (``[0. 1. ... 1999.]``), so distinct arrays would share a key;
    lists, tuples and floats never get here, so their keys are as they always were.
    """
    torch = sys.modules.get("torch")  # not imported here: a tensor exists only if torch is loaded
    if isinstance(value, np.ndarray) or (torch is not None and isinstance(value, torch.Tensor)):
        return value.tolist()
    return str(value)


def config_hash(config: Mapping[str, Any]) -> str:
    """Stable short hash of a JSON-serialisable config (arrays count by their exact values)."""
    blob = json.dumps(config, sort_keys=True, default=_json_default).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    # Created with 0666 for the kernel to apply the umask: ordinary permissions, without reading the umask
    # by setting it (os.umask), which would give files that other threads create meanwhile the wrong mode.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class CacheError(RuntimeError):
    """The cache entry exists but cannot be trusted (raised only where a rebuild is impossible)."""


class ArrayCache:
    """One cached data set, identified by ``name``, ``config`` and ``version``.

    Args:
        name: data set family, e.g. ``"lotka-volterra"`` (a folder name).
        config: every setting the arrays depend on (JSON-serialisable).
        version: generator version; bump it whenever the generating code changes its output.
        root: cache root (default :func:`data_root`).
    """

    ARRAYS = "arrays.npz"
    MANIFEST = "manifest.json"

    def __init__(self, name: str, config: Mapping[str, Any], version: str, root: str | os.PathLike | None = None):
        self.name = name
        self.config = json.loads(json.dumps(dict(config), sort_keys=True, default=_json_default))
        self.version = str(version)
        self.hash = config_hash({"config": self.config, "version": self.version})
        self.dir = Path(root).expanduser() if root is not None else data_root()
        self.dir = self.dir / name / self.hash

    @property
    def arrays_path(self) -> Path:
        """Path of the ``.npz`` file."""
        return self.dir / self.ARRAYS

    @property
    def manifest_path(self) -> Path:
        """Path of the manifest."""
        return self.dir / self.MANIFEST

    def status(self) -> str:
        """``"ok"``, ``"missing"``, ``"stale"`` or ``"corrupt"``."""
        if not self.manifest_path.exists() and not self.arrays_path.exists():
            return "missing"
        try:
            manifest = json.loads(self.manifest_path.read_text())
        except (OSError, ValueError, RecursionError):  # RecursionError: absurdly deep nesting
            return "corrupt"
        if not isinstance(manifest, dict):  # valid JSON such as null or [] is no manifest either
            return "corrupt"
        if manifest.get("generator_version") != self.version or manifest.get("config_hash") != self.hash:
            return "stale"
        if not self.arrays_path.exists() or sha256_file(self.arrays_path) != manifest.get("sha256"):
            return "corrupt"
        return "ok"

    def load(self) -> dict[str, np.ndarray] | None:
        """Return the cached arrays, or ``None`` (with a warning when an entry was rejected)."""
        status = self.status()
        if status == "missing":
            return None
        if status != "ok":
            warnings.warn(f"hybridzoo: {status} data cache at {self.dir} is ignored and will be rebuilt", stacklevel=2)
            return None
        with np.load(self.arrays_path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}

    def save(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Atomically store ``arrays`` and then the manifest that vouches for them."""
        import io

        buf = io.BytesIO()
        np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
        data = buf.getvalue()
        atomic_write_bytes(self.arrays_path, data)
        manifest = {
            "name": self.name,
            "generator_version": self.version,
            "config": self.config,
            "config_hash": self.hash,
            "sha256": hashlib.sha256(data).hexdigest(),
            "arrays": {k: {"shape": list(np.shape(v)), "dtype": str(np.asarray(v).dtype)} for k, v in arrays.items()},
        }
        atomic_write_bytes(self.manifest_path, json.dumps(manifest, indent=2, sort_keys=True).encode())

    def load_or_build(
        self, build: Callable[[], Mapping[str, np.ndarray]], force: bool = False
    ) -> dict[str, np.ndarray]:
        """Load the entry if it is sound, else call ``build()``, store and return its arrays.

        ``force=True`` builds even over a sound entry, which stays in place (and valid) until the new
        arrays replace it: a forced rebuild that fails or is interrupted loses nothing.
        """
        arrays = None if force else self.load()
        if arrays is None:
            arrays = {k: np.asarray(v) for k, v in build().items()}
            self.save(arrays)
        return arrays
