"""Architectures by name: how a checkpoint's model is built from its config (``ARCHITECTURES``).

:func:`get_architecture` names the valid architectures when asked for an unknown one. An entry's
config class and build function may be ``"package.module:attribute"`` strings, imported on first
use, so registering an architecture never imports its code (nor torch).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ppviz.checkpoints.format import NAME_RE, NAME_RULE

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

__all__ = ["ARCHITECTURES", "Architecture", "get_architecture", "register_architecture"]


def _import_object(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ValueError(f"import path {spec!r} is not of the form 'package.module:attribute'")
    try:
        obj = importlib.import_module(module)
    except ImportError as e:
        raise ValueError(f"{spec}: module {module!r} could not be imported ({e}); this ppviz may predate it") from e
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as e:
            raise ValueError(f"{spec}: module {module!r} has no attribute {attr!r}") from e
    return obj


@dataclass(frozen=True)
class Architecture:
    """One buildable model: ``build_fn(config_dict) -> nn.Module``, config checked by ``config_cls``.

    ``config_cls`` (a dataclass, or None to leave validation to ``build_fn``) and ``build_fn``
    may be given as ``"package.module:attribute"`` strings, imported on first use, so that
    registering an architecture never imports its code.
    """

    name: str
    config_cls: type | str | None
    build_fn: Callable[[dict], nn.Module] | str

    @property
    def lazy(self) -> bool:
        return isinstance(self.build_fn, str)

    def resolved(self) -> tuple[type | None, Callable[[dict], nn.Module]]:
        try:
            cls = _import_object(self.config_cls) if isinstance(self.config_cls, str) else self.config_cls
            fn = _import_object(self.build_fn) if isinstance(self.build_fn, str) else self.build_fn
        except ValueError as e:
            raise ValueError(f"architecture {self.name!r} is not available: {e}") from e
        return cls, fn

    def validate_config(self, config: Mapping) -> dict:
        """The config as a plain dict, after checking its keys against ``config_cls``."""
        cls, _ = self.resolved()
        config = dict(config)
        if cls is None or not dataclasses.is_dataclass(cls):
            return config
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(config) - set(fields))
        required = [
            n for n, f in fields.items()
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
        ]
        missing = [n for n in required if n not in config]
        problems = [text for bad, text in ((unknown, f"unknown keys {unknown} (known: {sorted(fields)})"),
                                           (missing, f"missing required keys {missing}")) if bad]
        if problems:
            raise ValueError(f"config for architecture {self.name!r}: " + "; ".join(problems))
        try:
            cls(**config)
        except (TypeError, ValueError) as e:
            raise ValueError(f"config for architecture {self.name!r} is invalid: {e}") from e
        return config

    def build(self, config: Mapping) -> nn.Module:
        config = self.validate_config(config)
        _, fn = self.resolved()
        return fn(config)


ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(
    name: str,
    config_cls: type | str | None,
    build_fn: Callable[[dict], nn.Module] | str,
    *,
    replace: bool = False,
) -> Architecture:
    """Register ``build_fn(config_dict) -> nn.Module`` under ``name`` (strings import lazily).

    A lazy entry (``build_fn`` given as an import path) may be replaced by a concrete one, so
    that the module it names can register itself when first imported; any other second
    registration of a name raises ValueError unless ``replace=True``.
    """
    if not NAME_RE.match(name):
        raise ValueError(f"architecture name {name!r} must match {NAME_RULE}")
    if name in ARCHITECTURES and not (replace or ARCHITECTURES[name].lazy):
        raise ValueError(f"architecture {name!r} is already registered (pass replace=True to replace it)")
    arch = Architecture(name, config_cls, build_fn)
    ARCHITECTURES[name] = arch
    return arch


def get_architecture(name: str) -> Architecture:
    """The registered architecture ``name``; ValueError listing the known names otherwise."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; known architectures: {sorted(ARCHITECTURES)}") from None


def _build_pp(config: dict) -> nn.Module:
    from ppviz.models.pp import PPAutoencoder, PPConfig

    return PPAutoencoder(PPConfig(**config))


register_architecture("pp-mlp", "ppviz.models.pp:PPConfig", _build_pp)
# The conditional EDM U-Net; its module is imported only when such a checkpoint is built.
register_architecture("edm-unet", None, "ppviz.diffusion.downscaler:build_from_config")
# A denoiser exported to ONNX (ppviz.checkpoints.onnx_contract), run by onnxruntime.
register_architecture("onnx-denoiser", None, "ppviz.diffusion.onnx_model:build_from_config")
