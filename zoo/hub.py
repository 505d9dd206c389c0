"""Shipped and user checkpoints: weights-only files plus a JSON model card, sha256-checked.

A checkpoint is two files side by side: ``<name>.safetensors`` (a flat state dict, never a pickle)
and ``<name>.json`` (the card: model, hparams, data config, metrics, training command, seed, wall
time, hardware, library versions and the weights' sha256). Cards are found, in order, as a URL, a
local path (the card or its weights file), a card shipped in ``hybridzoo.checkpoints``, or a card in
the local checkpoint cache ``$HYBRIDZOO_DATA/checkpoints``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import warnings
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlparse

import torch
from hybridzoo.datamodules.cache import atomic_write_bytes, data_root, sha256_file
from hybridzoo.datamodules.download import download

if TYPE_CHECKING:
    from hybridzoo.zoo.base import HybridModule

WEIGHTS_SUFFIX = ".safetensors"
CARD_KEYS = ("name", "paper", "weights", "sha256", "metrics", "data", "train_command", "seed", "epochs",
             "wall_time_s", "hardware", "versions")


class CheckpointError(ValueError):
    """A checkpoint or its card is missing, corrupt, or does not match."""


def library_version() -> str:
    """Installed version of hybridzoo."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hybridzoo")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


def versions() -> dict[str, str]:
    """Versions of the libraries a checkpoint depends on."""
    import lightning
    import numpy

    return {
        "hybridzoo": library_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def hardware() -> str:
    """A one-line description of the machine (CPU count and GPU name, if any)."""
    desc = f"{platform.machine()} CPU x{os.cpu_count()}"
    if torch.cuda.is_available():
        desc += f", {torch.cuda.device_count()}x {torch.cuda.get_device_name(0)}"
    return desc


def cache_dir() -> Path:
    """Where downloaded checkpoints are kept: ``$HYBRIDZOO_DATA/checkpoints``."""
    return data_root() / "checkpoints"


def _is_url(s: str) -> bool:
    return urlparse(s).scheme in ("http", "https", "file")


def _is_bare_name(s: str) -> bool:
    """Whether ``s`` reads as a checkpoint name rather than a path (no separator, no ``~``/``.`` start)."""
    seps = {"/", os.sep, os.altsep} - {None}
    return not any(sep in s for sep in seps) and not s.startswith(("~", "."))


def _card_in_folder(p: Path) -> Path | None:
    """The card a folder holds: ``<folder>/<folder name>.json``, else its only ``*.json`` file."""
    own = p / f"{p.name}.json"
    if own.is_file():
        return own
    cards = sorted(f for f in p.glob("*.json") if f.is_file())
    if len(cards) > 1:
        raise CheckpointError(f"folder {p} holds several JSON files ({', '.join(f.name for f in cards)}): "
                              "name the card itself")
    return cards[0] if cards else None


def resolve_card(name_or_path: str | os.PathLike[str], *, cache: str | os.PathLike[str] | None = None) -> Path:
    """Find the card (JSON) of a checkpoint, downloading it (and its weights) for a URL.

    A folder stands for the card it holds. A bare name (no path separator) that is also the name of a
    folder without a card, such as ``zoo release NAME --out NAME`` leaves behind in the current
    directory, still finds the shipped or cached checkpoint ``NAME``; write ``./NAME`` to mean the folder.
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"name_or_path must be a model name, a path or a URL, got {name_or_path!r}")
    s = os.fspath(name_or_path)
    if not isinstance(s, str) or not s:
        raise TypeError(f"name_or_path must be a model name, a path or a URL, got {name_or_path!r}")
    cdir = Path(cache) if cache is not None else cache_dir()
    if _is_url(s):
        return _fetch_url(s, cdir)
    p = Path(s).expanduser()
    if p.suffix == ".json" and p.is_file():
        return p
    if p.suffix == WEIGHTS_SUFFIX and p.is_file():
        card = p.with_suffix(".json")
        if not card.is_file():
            raise CheckpointError(f"no model card {card.name} beside {p}: a checkpoint is weights + card")
        return card
    folder_without_card = False
    if p.is_dir():
        card = _card_in_folder(p)
        if card is not None:
            return card
        if not (isinstance(name_or_path, str) and _is_bare_name(s)):
            raise CheckpointError(f"no checkpoint at {p}: the folder holds no model card")
        folder_without_card = True  # maybe a folder named like a shipped checkpoint: look the name up
    elif p.suffix in (".json", WEIGHTS_SUFFIX):
        raise CheckpointError(f"no checkpoint at {p}")
    shipped = resources.files("hybridzoo.checkpoints") / f"{s}.json"
    if shipped.is_file():
        return Path(str(shipped))
    cached = cdir / f"{s}.json"
    if cached.is_file():
        return cached
    if folder_without_card:
        raise CheckpointError(f"no checkpoint at {p}: the folder holds no model card, and no card named {s!r} "
                              f"ships or is cached in {cdir}")
    from hybridzoo.zoo.registry import names

    known = [n for n in names() if (resources.files("hybridzoo.checkpoints") / f"{n}.json").is_file()]
    raise ValueError(
        f"unknown checkpoint {s!r}: not a file, not a URL, and no card named so ships or is cached in {cdir}; "
        f"shipped checkpoints: {', '.join(known) or 'none'}"
    )


def _fetch_url(url: str, cdir: Path) -> Path:
    """Download a card, then its weights (checksummed against the card) into the cache."""
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310
        raw = resp.read()
    try:
        card = json.loads(raw)
        weights, sha = card["weights"], card["sha256"]
        if not (isinstance(weights, str) and isinstance(sha, str)):
            raise TypeError("'weights' and 'sha256' must be strings")
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{url} is not a hybridzoo model card: {err}") from None
    if Path(weights).name != weights:
        raise CheckpointError(f"card at {url} names weights {weights!r} outside its folder")
    download(urljoin(url, weights), cdir / weights, sha)
    card_path = cdir / Path(urlparse(url).path).name
    atomic_write_bytes(card_path, raw)
    return card_path


def read_card(path: Path) -> dict[str, Any]:
    """Read and check a card file."""
    try:
        card = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"model card {path} cannot be read: {err}") from None
    missing = [k for k in ("weights", "sha256", "model", "hparams") if k not in card]
    if missing:
        raise CheckpointError(f"model card {path} lacks {missing}")
    return card


def check_map_location(map_location: str | torch.device | int) -> torch.device:
    """``map_location`` as a :class:`torch.device`, checked to be a device that is available here.

    Raises:
        TypeError: not a device name, a :class:`torch.device` or a device index.
        ValueError: not a valid device, or one this machine does not have (e.g. ``"cuda"`` without CUDA).
    """
    if isinstance(map_location, bool) or not isinstance(map_location, (str, torch.device, int)):
        raise TypeError(f"map_location must be a device such as 'cpu', 'cuda:0' or a torch.device, "
                        f"got {type(map_location).__name__} {map_location!r}")
    try:
        device = torch.device(map_location)
    except (RuntimeError, ValueError, TypeError) as err:
        raise ValueError(f"map_location={map_location!r} is not a device ('cpu', 'cuda', 'cuda:1', ...): "
                         f"{err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"map_location={map_location!r}, but CUDA is not available on this machine; use 'cpu'")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"map_location={map_location!r}, but this machine has "
                         f"{torch.cuda.device_count()} CUDA device(s)")
    try:
        torch.empty(0, device=device)
    except Exception as err:  # torch raises RuntimeError or AssertionError for a backend it was built without
        raise ValueError(f"map_location={map_location!r} is not available on this machine: {err}") from None
    return device


def load_state_dict(
    name_or_path: str | os.PathLike[str], map_location: str | torch.device = "cpu", *, cache: str | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Verified weights and card of a checkpoint, without building the model."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    device = check_map_location(map_location)
    card_path = resolve_card(name_or_path, cache=cache)
    card = read_card(card_path)
    weights = card_path.parent / card["weights"]
    if not weights.is_file():
        raise CheckpointError(f"weights file {weights} named by card {card_path} is missing")
    digest = sha256_file(weights)
    if digest.lower() != str(card["sha256"]).lower():
        raise CheckpointError(
            f"sha256 mismatch for {weights}: file has {digest}, card {card_path.name} expects {card['sha256']} "
            "(corrupt or replaced file)"
        )
    try:
        state = load_file(str(weights), device=str(device))
    except SafetensorError as err:  # malformed header or data
        raise CheckpointError(f"weights file {weights} is corrupt: {err}") from None
    ours = library_version()
    theirs = card.get("versions", {}).get("hybridzoo")
    if theirs and theirs != ours:
        warnings.warn(
            f"checkpoint {card.get('name', card_path.stem)} was saved with hybridzoo {theirs}, this is {ours}",
            stacklevel=2,
        )
    return state, card


def load_pretrained(
    name_or_path: str | os.PathLike[str], map_location: str | torch.device = "cpu", *, cache: str | None = None
) -> HybridModule:
    """Build a zoo model from a checkpoint and load its weights (offline for shipped names).

    Args:
        name_or_path: a shipped checkpoint name (``hybridzoo zoo list``), a card or weights path, a
            name in the local cache, or an ``http(s)://`` URL of a card (weights are fetched beside it
            and checked against the card's sha256).
        map_location: device for the weights.
        cache: folder for downloaded checkpoints (default ``$HYBRIDZOO_DATA/checkpoints``).

    Returns:
        The model in eval mode, with ``model.card`` holding the card.
    """
    from hybridzoo.zoo.base import HybridModule
    from hybridzoo.zoo.registry import model_class

    device = check_map_location(map_location)
    state, card = load_state_dict(name_or_path, device, cache=cache)
    cls = model_class(card["model"])
    if not issubclass(cls, HybridModule):
        raise CheckpointError(f"{card['model']} is not a hybridzoo model")
    hparams = {k: v for k, v in card["hparams"].items() if k != "pretrained"}
    model = cls(**hparams)
    # load_state_dict casts into the model's dtype: give the model the saved one (e.g. float64) first
    saved = {v.dtype for v in state.values() if v.is_floating_point()}
    if len(saved) == 1:
        model = model.to(saved.pop())
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"weights do not fit {cls.__name__}{hparams}: {err}") from None
    model.card = card
    model.on_pretrained_loaded()
    return model.to(device).eval()


def save_pretrained(
    model: HybridModule,
    out_dir: str | os.PathLike[str],
    *,
    name: str | None = None,
    metrics: dict[str, float] | None = None,
    data: dict[str, Any] | None = None,
    train_command: str = "",
    seed: int | None = None,
    epochs: int | None = None,
    wall_time_s: float | None = None,
    extra: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``<name>.safetensors`` and ``<name>.json`` into ``out_dir`` and return the card's path.

    Refuses to replace existing files unless ``overwrite=True``; both files are written atomically.
    """
    from hybridzoo.zoo.registry import get_entry
    from safetensors.torch import save as save_bytes

    name = name or model.zoo_name
    if not name:
        raise ValueError("name must be given for a model that is not registered (zoo_name is None)")
    zoo_name = model.zoo_name or name
    entry = get_entry(zoo_name)
    out = Path(out_dir)
    weights_path, card_path = out / f"{name}{WEIGHTS_SUFFIX}", out / f"{name}.json"
    if not overwrite:
        for p in (weights_path, card_path):
            if p.exists():
                raise FileExistsError(f"{p} exists; pass overwrite=True to replace it")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    blob = save_bytes(state)
    hparams = {k: v for k, v in dict(model.hparams).items() if k != "pretrained"}
    card = {
        "name": name,
        "model": zoo_name,
        "paper": entry.paper,
        "weights": weights_path.name,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "hparams": hparams,
        "metrics": {k: float(v) for k, v in sorted((metrics or {}).items())},
        "data": data or {},
        "train_command": train_command,
        "seed": seed,
        "epochs": epochs,
        "wall_time_s": None if wall_time_s is None else round(float(wall_time_s), 2),
        "hardware": hardware(),
        "versions": versions(),
    }
    card.update(extra or {})
    atomic_write_bytes(weights_path, blob)
    atomic_write_bytes(card_path, (json.dumps(card, indent=2, default=str) + "\n").encode())
    return card_path
