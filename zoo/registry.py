"""The model registry: every zoo model's LightningModule, DataModule, config and paper, by name.

Entries hold import paths (``"package.module:Class"``) so that listing the zoo imports no model.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    import lightning as L
    from hybridzoo.zoo.base import HybridModule


@dataclass(frozen=True)
class ZooEntry:
    """One registered zoo model.

    Attributes:
        name: registry name, e.g. ``"ude-lotka-volterra"``; also the name of its shipped checkpoint.
        model: import path of the LightningModule, ``"module:Class"``.
        datamodule: import path of the paired LightningDataModule.
        config: file name of its LightningCLI config in ``hybridzoo.configs``.
        paper: the reference the model follows.
        summary: one line on what it does.
    """

    name: str
    model: str
    datamodule: str
    config: str
    paper: str
    summary: str = ""


_REGISTRY: dict[str, ZooEntry] = {}


def register(
    name: str, *, model: str, datamodule: str, config: str, paper: str, summary: str = "", overwrite: bool = False
) -> ZooEntry:
    """Add a model to the zoo; refuses to replace an existing name unless ``overwrite=True``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    for arg, value in (("model", model), ("datamodule", datamodule)):
        if not isinstance(value, str) or ":" not in value:
            raise ValueError(f"{arg} must be an import path 'package.module:Class', got {value!r}")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"a zoo model named {name!r} is already registered (pass overwrite=True to replace it)")
    entry = ZooEntry(name, model, datamodule, config, paper, summary)
    _REGISTRY[name] = entry
    return entry


def get_entry(name: str) -> ZooEntry:
    """The registry entry of ``name``; ``ValueError`` listing the known names otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown zoo model {name!r}; known models: {', '.join(sorted(_REGISTRY))}") from None


def names() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def import_path(path: str) -> Any:
    """Import ``"package.module:Attr"``."""
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def model_class(name: str) -> type[HybridModule]:
    """The LightningModule class of a registered model."""
    return import_path(get_entry(name).model)


def datamodule_class(name: str) -> type[L.LightningDataModule]:
    """The DataModule class of a registered model."""
    return import_path(get_entry(name).datamodule)


def config_path(name: str) -> Path:
    """Path of the packaged LightningCLI config of ``name`` (inside the installed package)."""
    ref = resources.files("hybridzoo.configs") / get_entry(name).config
    path = Path(str(ref))
    if not path.is_file():
        raise FileNotFoundError(f"config {get_entry(name).config} of {name!r} is missing from hybridzoo.configs")
    return path


def load_config(name: str) -> dict[str, Any]:
    """The parsed config of ``name``: ``{"model": {...}, "data": {...}, "trainer": {...}}``."""
    return yaml.safe_load(config_path(name).read_text()) or {}


def _init_args(section: dict[str, Any] | None) -> dict[str, Any]:
    return dict((section or {}).get("init_args") or {})


def read_packaged_card(name: str) -> dict[str, Any] | None:
    """The JSON card shipped in ``hybridzoo.checkpoints`` for ``name``, or ``None``."""
    ref = resources.files("hybridzoo.checkpoints") / f"{name}.json"
    return json.loads(ref.read_text()) if ref.is_file() else None


def create_model(name: str, **overrides: Any) -> HybridModule:
    """Instantiate a zoo model from its config's ``model.init_args``, updated by ``overrides``.

    ``pretrained=NAME`` weights are loaded at once (a bare constructor defers them to the fit's ``setup``):
    the model returned holds them, and is marked :attr:`~hybridzoo.zoo.base.HybridModule.fine_tuning`.
    """
    cls = model_class(name)
    args = _init_args(load_config(name).get("model"))
    args.update(overrides)
    model = cls(**args)
    model.load_pending_pretrained()
    return model


def create_datamodule(name: str, **overrides: Any) -> L.LightningDataModule:
    """Instantiate a zoo model's DataModule from its config's ``data.init_args``, updated by ``overrides``."""
    args = _init_args(load_config(name).get("data"))
    args.update(overrides)
    return datamodule_class(name)(**args)


def datamodule_for(model: HybridModule, **overrides: Any) -> L.LightningDataModule:
    """The DataModule paired with ``model``: zoo config, then its card's ``data``, then ``overrides``."""
    name = model.zoo_name
    if name is None:
        raise ValueError(f"{type(model).__name__} is not a registered zoo model (zoo_name is None)")
    args = dict((model.card or {}).get("data") or {})
    args.update(overrides)
    return create_datamodule(name, **args)


def check_pairing(model: HybridModule, datamodule: L.LightningDataModule) -> None:
    """Raise ``ValueError`` where ``datamodule`` is the zoo DataModule of other zoo models than ``model``.

    Its batches would fail deep inside the model (a ``KeyError`` on a batch field), e.g. where ``hybridzoo test
    --ckpt_path`` restores a checkpoint's own class under another model's config. A DataModule that no zoo
    model registers (the user's own) is never refused.
    """
    feeds = [e.name for e in _REGISTRY.values() if isinstance(datamodule, datamodule_class(e.name))]
    if feeds and not any(isinstance(model, model_class(n)) for n in feeds):
        raise ValueError(
            f"{type(datamodule).__name__} is the DataModule of zoo model(s) {', '.join(feeds)}, not of a "
            f"{type(model).__name__}: its batches are not what this model reads (a checkpoint tested under "
            "another model's config?)"
        )


def list_models() -> list[dict[str, Any]]:
    """One row per zoo model: name, paper, summary, whether weights ship, and the card's metrics."""
    rows = []
    for name in names():
        e = _REGISTRY[name]
        card = read_packaged_card(name)
        rows.append(
            {
                "name": name,
                "paper": e.paper,
                "summary": e.summary,
                "weights": card is not None,
                "metrics": dict(card.get("metrics", {})) if card else {},
            }
        )
    return rows


# The built-in zoo. One line per model; import paths are resolved lazily.
register(
    "ude-lotka-volterra",
    model="hybridzoo.zoo.ude_lotka_volterra:UDELotkaVolterra",
    datamodule="hybridzoo.datamodules.lotka_volterra:LotkaVolterraDataModule",
    config="ude_lotka_volterra.yaml",
    paper="Rackauckas et al., Universal Differential Equations for Scientific Machine Learning, 2020",
    summary="Lotka-Volterra with NN interaction terms, RK4 in the loop, distilled to symbolic terms",
)
register(
    "learned-primal-dual-ct",
    model="hybridzoo.zoo.learned_primal_dual:LearnedPrimalDualCT",
    datamodule="hybridzoo.datamodules.ellipses:EllipsesDataModule",
    config="learned_primal_dual_ct.yaml",
    paper="Adler & Öktem, Learned Primal-Dual Reconstruction, IEEE TMI 2018",
    summary="Sparse-view CT: unrolled primal-dual CNNs around a differentiable ray transform, vs LGD, TV, FBP",
)
register(
    "residual-aerofoil",
    model="hybridzoo.zoo.residual_aerofoil:ResidualAerofoil",
    datamodule="hybridzoo.datamodules.aerofoil:AerofoilDataModule",
    config="residual_aerofoil.yaml",
    paper="Pawar, San, Aksoylu, Rasheed & Kvamsdal, Physics guided machine learning using simplified theories, "
    "Phys. Fluids 2021",
    summary="Aerofoil lift: batched Hess-Smith panel method + learned viscous correction, trained on XFOIL polars",
)
register(
    "rk-net-digits",
    model="hybridzoo.zoo.rk_net:RKNet",
    datamodule="hybridzoo.datamodules.digits:DigitsDataModule",
    config="rk_net_digits.yaml",
    paper="Chen, Rubanova, Bettencourt & Duvenaud, Neural Ordinary Differential Equations, NeurIPS 2018",
    summary="RK-Net: a conv ODE block integrated by RK4 replaces the residual stack; ResNet + MLP baselines",
)
register(
    "rk-net-mnist",
    model="hybridzoo.zoo.rk_net:RKNetMNIST",
    datamodule="hybridzoo.datamodules.mnist:MNISTDataModule",
    config="rk_net_mnist.yaml",
    paper="Chen, Rubanova, Bettencourt & Duvenaud, Neural Ordinary Differential Equations, NeurIPS 2018",
    summary="RK-Net with the paper's MNIST network (IDX files, checksummed download); no weights shipped",
)
register(
    "solver-in-the-loop-ns",
    model="hybridzoo.zoo.solver_in_the_loop:SolverInTheLoop",
    datamodule="hybridzoo.datamodules.wake_flow:WakeFlowDataModule",
    config="solver_in_the_loop_ns.yaml",
    paper="Um, Brand, Fei, Holl & Thuerey, Solver-in-the-Loop: Learning from Differentiable Physics to Interact "
    "with Iterative PDE-Solvers, NeurIPS 2020",
    summary="Cylinder wakes: a CNN corrects every coarse Navier-Stokes step, trained through the unrolled solver",
)
register(
    "solver-in-the-loop-ns-large",
    model="hybridzoo.zoo.solver_in_the_loop:SolverInTheLoop",
    datamodule="hybridzoo.datamodules.wake_flow:WakeFlowDataModule",
    config="solver_in_the_loop_ns_large.yaml",
    paper="Um, Brand, Fei, Holl & Thuerey, Solver-in-the-Loop: Learning from Differentiable Physics to Interact "
    "with Iterative PDE-Solvers, NeurIPS 2020",
    summary="solver-in-the-loop-ns with a 6x larger correction CNN: as accurate over 100 steps, less over 400, "
    "costlier per step",
)
