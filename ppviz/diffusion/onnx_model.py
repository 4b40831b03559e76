"""An exported denoiser run by onnxruntime, driven by ppviz's samplers like a :class:`Downscaler`.

:class:`OnnxDenoiser` is the denoiser ``D(x; sigma, cond)`` of an ONNX checkpoint (contract:
:mod:`ppviz.checkpoints.onnx_contract`): it pads ``x`` and ``cond`` (reflect) to the contract's
``size_multiple``, runs the graph on numpy float32 arrays and crops the result, so the samplers of
:mod:`ppviz.diffusion.samplers` call it exactly as they call :class:`EDMPrecond`. Padding outside
the graph equals EDMPrecond's padding inside it: the preconditioning is pointwise, so scaling
commutes with reflect padding and the crop of ``c_skip x_pad`` is ``c_skip x``.

:class:`OnnxDownscaler` is a :class:`Downscaler` whose ``precond`` is that denoiser: the same
conditioning (upsampling, static channels, residual) and the same :meth:`Downscaler.sample`, so
the pipeline, the CLI and the dashboard use it unchanged. Providers: onnxruntime's CUDA provider
when ``device`` is CUDA and the installed onnxruntime has it, else the CPU provider. Tensors stay on
the CPU (onnxruntime moves them). No custom op library is ever registered.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ppviz.diffusion.downscaler import STATIC_CHANNELS, Downscaler
from ppviz.models.unet import pad_to_multiple


@dataclass(frozen=True)
class OnnxConfig:
    """What :meth:`Downscaler.condition` and ``sample`` need, from an ONNX contract."""

    sigma_data: float
    residual: bool
    upsample: str
    factor: int
    static_names: tuple[str, ...]
    size_multiple: int
    noise_schedule: dict

    @classmethod
    def from_contract(cls, c: dict) -> "OnnxConfig":
        return cls(sigma_data=float(c["sigma_data"]), residual=bool(c["residual"]), upsample=c["upsample"],
                   factor=int(c["factor"]), static_names=tuple(c["static_channels"]["names"]),
                   size_multiple=int(c["size_multiple"]), noise_schedule=dict(c["noise_schedule"]))

    @property
    def cond_channels(self) -> int:
        return 1 + len(self.static_names)


def providers_for(device) -> list[str]:
    """onnxruntime providers for a torch ``device``: CUDA first when asked for and available."""
    import onnxruntime as ort

    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxDenoiser(nn.Module):
    """``D(x; sigma, cond)`` through an onnxruntime session (see the module docstring).

    Parameters
    ----------
    onnx_model : bytes
        The serialised ONNX model (checked by :func:`ppviz.checkpoints.onnx_contract.read_onnx_model`).
    size_multiple : int
        Height and width the graph accepts are multiples of this.
    providers : list of str
        onnxruntime execution providers.
    """

    def __init__(self, onnx_model: bytes, size_multiple: int, providers: list[str]):
        super().__init__()
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # errors only
        # no busy-waiting worker threads between calls: they would take the CPU from torch (the PP
        # decoder, other runs of a shared server) while the sampler does its own arithmetic
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self.session = ort.InferenceSession(onnx_model, sess_options=opts, providers=providers)
        self.size_multiple = int(size_multiple)
        self.providers = list(self.session.get_providers())

    def forward(self, x: torch.Tensor, sigma, cond: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"the ONNX denoiser expects x of shape (B, 1, H, W), got {tuple(x.shape)}")
        if cond is None:
            raise ValueError("the ONNX denoiser needs its conditioning channels (cond)")
        b = x.shape[0]
        sigma = torch.as_tensor(sigma, dtype=torch.float32).reshape(-1)
        sigma = sigma.expand(b) if sigma.numel() == 1 else sigma
        if sigma.numel() != b:
            raise ValueError(f"sigma has {sigma.numel()} values for a batch of {b}")
        cond = cond.expand(b, *cond.shape[1:]) if cond.shape[0] != b else cond
        both, crop = pad_to_multiple(torch.cat([x.float(), cond.float()], dim=1).cpu(), self.size_multiple)
        feed = {"x": np.ascontiguousarray(both[:, :1].numpy()), "sigma": np.ascontiguousarray(sigma.cpu().numpy()),
                "cond": np.ascontiguousarray(both[:, 1:].numpy())}
        (out,) = self.session.run(["denoised"], feed)
        return torch.from_numpy(out)[..., crop[0], crop[1]].to(device=x.device, dtype=x.dtype)


class OnnxDownscaler(Downscaler):
    """A :class:`Downscaler` whose denoiser is an ONNX graph; sampling defaults from the contract."""

    def __init__(self, contract: dict, onnx_model: bytes, device=None):
        nn.Module.__init__(self)  # no U-Net to build: the network is the ONNX graph
        self.contract = contract
        self.config = OnnxConfig.from_contract(contract)
        unknown = [n for n in self.config.static_names if n not in STATIC_CHANNELS]
        if unknown:
            raise ValueError(f"the contract names static channels {unknown} that ppviz cannot provide; "
                             f"ppviz provides {list(STATIC_CHANNELS)}")
        self._static_index = [STATIC_CHANNELS.index(n) for n in self.config.static_names]
        self.precond = OnnxDenoiser(onnx_model, self.config.size_multiple, providers_for(device))

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")  # inputs and outputs are host arrays; onnxruntime places the work

    def condition(self, coarse, static):
        """:meth:`Downscaler.condition`; ``static`` in :data:`STATIC_CHANNELS` order is reduced to the
        contract's static channels (a graph may use a subset, in its own order)."""
        static = torch.as_tensor(static)
        if static.dim() in (3, 4) and static.shape[-3] == len(STATIC_CHANNELS):
            static = static[..., self._static_index, :, :]
        return super().condition(coarse, static)

    def to(self, *args, **kwargs):  # the session is not a torch module: nothing to move
        return self

    @torch.no_grad()
    def sample(self, coarse, static, seeds, *, sampler: str | None = None, num_steps: int | None = None,
               sigma_min: float | None = None, sigma_max: float | None = None, rho: float | None = None,
               **kwargs) -> torch.Tensor:
        """:meth:`Downscaler.sample` with the contract's ``noise_schedule`` as the defaults."""
        s = self.config.noise_schedule
        return super().sample(coarse, static, seeds, sampler=sampler or s["sampler"],
                              num_steps=num_steps or s["steps"],
                              sigma_min=s["sigma_min"] if sigma_min is None else sigma_min,
                              sigma_max=s["sigma_max"] if sigma_max is None else sigma_max,
                              rho=s["rho"] if rho is None else rho, **kwargs)


def build_from_config(contract: dict, *, onnx_model: bytes | None = None, device=None) -> OnnxDownscaler:
    """Entry of architecture ``onnx-denoiser`` (:mod:`ppviz.checkpoints.registry`); needs the model bytes."""
    if onnx_model is None:
        raise ValueError("an onnx-denoiser is built from its model.onnx; load it with ppviz.checkpoints.load_checkpoint")
    try:
        return OnnxDownscaler(contract, onnx_model, device)
    except Exception as e:  # onnxruntime's Fail / InvalidGraph / NotImplemented
        raise ValueError(str(e).splitlines()[0] if str(e) else type(e).__name__) from None
