"""Shipped and user checkpoints: load and save the weights-only file beside its model card, sha256-checked.

What a checkpoint is and how a name, a path or a URL finds its card: :mod:`hybridzoo.zoo.cards`.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from hybridzoo.datamodules.cache import atomic_write_bytes
from hybridzoo.zoo.cards import (
    RESERVED_KEYS,
    WEIGHTS_SUFFIX,
    CheckpointError,
    hardware,
    is_bare_name,
    is_file_name,
    library_version,
    read_card,
    resolve_card,
    versions,
)

if TYPE_CHECKING:
    from hybridzoo.zoo.base import HybridModule


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
    from safetensors.torch import load

    device = check_map_location(map_location)
    card_path = resolve_card(name_or_path, cache=cache)
    card = read_card(card_path)
    weights = card_path.parent / card["weights"]
    if not weights.is_file():
        raise CheckpointError(f"weights file {weights} named by card {card_path} is missing")
    # hashed and parsed from one read: a file replaced between a check and a second read would pass unchecked
    blob = weights.read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if digest.lower() != str(card["sha256"]).lower():
        raise CheckpointError(
            f"sha256 mismatch for {weights}: file has {digest}, card {card_path.name} expects {card['sha256']} "
            "(corrupt or replaced file)"
        )
    try:
        state = {k: v.to(device) for k, v in load(blob).items()}
    except SafetensorError as err:  # malformed header or data
        raise CheckpointError(f"weights file {weights} is corrupt: {err}") from None
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:  # the sha256 only proves the file is the one the card names, not that training ended well
        raise CheckpointError(f"weights file {weights} holds NaN or infinite values in {len(bad)} tensors "
                              f"(e.g. {bad[0]})")
    ours = library_version()
    theirs = card["versions"].get("hybridzoo") if isinstance(card.get("versions"), dict) else None
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
            folder holding one card, the name of a card placed in the cache, or an ``http(s)://`` URL of
            a card (its weights are fetched from beside it and checked against the card's sha256; both
            are kept in that URL's own folder of the cache, see :func:`resolve_card`).
        map_location: device for the weights.
        cache: folder for downloaded checkpoints (default ``$HYBRIDZOO_DATA/checkpoints``).

    Returns:
        The model in eval mode, with ``model.card`` holding the card. Every tensor keeps the dtype it
        was saved with, also when they differ (e.g. a float32 network beside float64 physics).
    """
    from hybridzoo.zoo.base import HybridModule
    from hybridzoo.zoo.registry import model_class

    device = check_map_location(map_location)
    state, card = load_state_dict(name_or_path, device, cache=cache)
    cls = model_class(card["model"])
    if not issubclass(cls, HybridModule):
        raise CheckpointError(f"{card['model']} is not a hybridzoo model")
    hparams = {k: v for k, v in card["hparams"].items() if k != "pretrained"}
    try:
        model = cls(**hparams)
    except (TypeError, ValueError) as err:  # a card whose hparams are not its model's (edited, or another class)
        raise CheckpointError(f"the card's hparams do not build a {cls.__name__}: {err}") from None
    # load_state_dict casts into the model's dtype: give the model the saved one (e.g. float64) first, so
    # that non-persistent buffers follow too; with several saved dtypes only assign=True keeps each one
    saved = {v.dtype for v in state.values() if v.is_floating_point()}
    if len(saved) == 1:
        model = model.to(next(iter(saved)))
    try:
        model.load_state_dict(state, strict=True, assign=len(saved) > 1)
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

    ``model`` must be a registered zoo model, since :func:`load_pretrained` rebuilds it from the registry
    entry its ``zoo_name`` names; ``name`` (default: that zoo name) is the files' name. ``extra`` adds
    card fields but cannot set those written here (:data:`RESERVED_KEYS`). Existing files are replaced
    only with ``overwrite=True``: both new files are written in full to temporary files in ``out_dir``
    first and then renamed over the old ones, weights then card, one right after the other; a failure
    before the renames leaves the old pair as it was.

    Raises TypeError or ValueError naming the bad argument (an unregistered model, a ``name`` that is
    not a plain file name, a metric that is not a number, a reserved key in ``extra``).
    """
    from hybridzoo.zoo.base import HybridModule
    from hybridzoo.zoo.registry import get_entry, names
    from safetensors.torch import save as save_bytes

    if not isinstance(model, HybridModule):
        raise TypeError(f"model must be a hybridzoo model (a HybridModule), got {type(model).__name__}")
    zoo_name = model.zoo_name
    if zoo_name not in names():
        raise ValueError(f"model must be a registered zoo model, as load_pretrained rebuilds it from the registry, "
                         f"but {type(model).__name__}.zoo_name is {zoo_name!r}; register the model "
                         "(hybridzoo.zoo.registry.register) and set zoo_name to its name")
    name = zoo_name if name is None else name
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__} {name!r}")
    if not (name and is_bare_name(name) and is_file_name(name)):
        raise ValueError(f"name must be a file name (no path separator, not starting with '.' or '~'), got {name!r}")
    for arg, value in (("metrics", metrics), ("data", data), ("extra", extra)):
        if value is not None and not isinstance(value, Mapping):
            raise TypeError(f"{arg} must be a dict, got {type(value).__name__}")
    card_metrics = {}
    for k, v in sorted((metrics or {}).items(), key=lambda kv: str(kv[0])):
        try:
            if isinstance(v, (str, bytes)):  # float() would parse "1.5", but text is not a measured number
                raise TypeError(v)
            card_metrics[str(k)] = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"metrics[{k!r}] must be a number, got {type(v).__name__} {v!r:.80}") from None
    reserved = sorted(str(k) for k in (extra or {}) if k in RESERVED_KEYS)
    if reserved:
        raise ValueError(f"extra must not set {', '.join(map(repr, reserved))}: save_pretrained writes "
                         f"these card fields itself ({', '.join(RESERVED_KEYS)})")
    entry = get_entry(zoo_name)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"out_dir {str(out)!r} is a file, not a folder")
    weights_path, card_path = out / f"{name}{WEIGHTS_SUFFIX}", out / f"{name}.json"
    if not overwrite:
        for p in (weights_path, card_path):
            if p.exists():
                raise FileExistsError(f"{p} exists; pass overwrite=True to replace it")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    blob = save_bytes(state)
    hparams = {k: v for k, v in dict(model.hparams).items() if k != "pretrained"}
    card = {
        "name": name, "model": zoo_name, "paper": entry.paper, "weights": weights_path.name,
        "sha256": hashlib.sha256(blob).hexdigest(), "hparams": hparams, "metrics": card_metrics,
        "data": dict(data or {}), "train_command": train_command, "seed": seed, "epochs": epochs,
        "wall_time_s": None if wall_time_s is None else round(float(wall_time_s), 2),
        "hardware": hardware(), "versions": versions(),
    }
    card.update(extra or {})
    card_bytes = (json.dumps(card, indent=2, default=str) + "\n").encode()
    tag = f".{os.getpid()}.{secrets.token_hex(4)}.new"  # unique, so concurrent saves never mix their files
    temps = [out / f".{p.name}{tag}" for p in (weights_path, card_path)]
    try:
        for tmp, content in zip(temps, (blob, card_bytes)):
            atomic_write_bytes(tmp, content)  # fsynced before any old file is touched
        # nothing between the two renames: the closest to one commit that two files allow
        os.replace(temps[0], weights_path)
        os.replace(temps[1], card_path)
    except BaseException:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        raise
    return card_path
