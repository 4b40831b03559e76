"""A small conditional U-Net: the network ``F_theta`` inside the EDM denoiser.

After the DDPM++ U-Net of Karras et al. (2022), "Elucidating the Design Space of Diffusion-Based
Generative Models" (EDM, NVlabs/edm ``training/networks.py``), cut down to run on a 2-core CPU:

- input ``(B, in_channels, H, W)``: the caller concatenates the noisy fine field scaled by
  ``c_in`` with the conditioning channels (see :class:`ppviz.diffusion.precond.EDMPrecond`);
- noise conditioning: a positional (sinusoidal) embedding of ``c_noise`` followed by a 2-layer
  MLP (EDM ``PositionalEmbedding`` + ``map_layer0/1``), fed to every residual block through an
  adaptive group norm (EDM ``UNetBlock`` with ``adaptive_scale=True``:
  ``h = silu(norm(h) * (1 + scale) + shift)``);
- residual blocks ``(h + skip(x)) / sqrt(2)`` with the second convolution initialised to zero
  (EDM's ``init_zero``), so that at initialisation ``F = 0`` and the denoiser is ``c_skip * x``;
- one skip connection per resolution level (encoder output concatenated in the decoder),
  stride-2 convolutions down, nearest-neighbour x2 + convolution up; optional self-attention
  at the lowest resolution (off by default).

``H`` and ``W`` must be multiples of :attr:`UNet.size_multiple` ``= 2 ** (len(channel_mult) - 1)``;
:func:`pad_to_multiple` pads other sizes (reflect) and says how to crop back.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ppviz.io import check_config_keys


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of :class:`UNet`.

    Parameters
    ----------
    base_channels : int
        Channels at full resolution.
    channel_mult : tuple of int
        Channels at level ``l`` are ``base_channels * channel_mult[l]``; there are
        ``len(channel_mult) - 1`` stride-2 downsamplings.
    blocks_per_level : int
        Residual blocks per level in the encoder and in the decoder.
    attention : bool
        Self-attention after the middle block at the lowest resolution.
    attention_heads : int
        Heads of that attention (its channels must divide by it).
    dropout : float
        Dropout probability inside residual blocks (EDM uses 0.10-0.13 on CIFAR; 0 by default).
    in_channels : int
        Input channels: 1 (noisy fine field) + the conditioning channels.
    out_channels : int
        Output channels (1: the network output ``F`` for one field).
    emb_dim : int
        Width of the noise embedding fed to the residual blocks.
    """

    base_channels: int = 32
    channel_mult: tuple[int, ...] = (1, 2, 2, 2)
    blocks_per_level: int = 2
    attention: bool = False
    attention_heads: int = 4
    dropout: float = 0.0
    in_channels: int = 8
    out_channels: int = 1
    emb_dim: int = 128

    def __post_init__(self):
        object.__setattr__(self, "channel_mult", tuple(int(m) for m in self.channel_mult))
        if self.base_channels < 4 or self.base_channels % 4:
            raise ValueError(f"base_channels must be a positive multiple of 4, got {self.base_channels}")
        if not self.channel_mult or min(self.channel_mult) < 1:
            raise ValueError(f"channel_mult must be a non-empty tuple of positive ints, got {self.channel_mult}")
        if self.blocks_per_level < 1:
            raise ValueError(f"blocks_per_level must be >= 1, got {self.blocks_per_level}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.in_channels < 1 or self.out_channels < 1 or self.emb_dim < 2 or self.emb_dim % 2:
            raise ValueError("in_channels, out_channels must be >= 1 and emb_dim a positive even int")
        if self.attention and (self.base_channels * self.channel_mult[-1]) % self.attention_heads:
            raise ValueError("the lowest-level channels must divide by attention_heads")

    @property
    def size_multiple(self) -> int:
        """``H`` and ``W`` must be multiples of this: ``2 ** (len(channel_mult) - 1)``."""
        return 2 ** (len(self.channel_mult) - 1)

    def to_dict(self) -> dict:
        """JSON-able dict (``channel_mult`` as a list); inverse of :meth:`from_dict`."""
        d = asdict(self)
        d["channel_mult"] = list(self.channel_mult)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "UNetConfig":
        """Build from :meth:`to_dict` output; unknown keys raise ValueError naming the known ones."""
        check_config_keys(cls, d)
        return cls(**d)


def pad_to_multiple(x: torch.Tensor, m: int) -> tuple[torch.Tensor, tuple[slice, slice]]:
    """Pad the last two axes of ``x`` up to multiples of ``m``.

    Padding is split evenly (the extra cell, if odd, goes to the bottom/right) and uses
    ``reflect`` mode, or ``replicate`` where an axis is too short to reflect (pad >= size).

    Parameters
    ----------
    x : tensor, shape (..., H, W)
        At most 4-D (e.g. ``(B, C, H, W)``).
    m : int
        The multiple, e.g. :attr:`UNet.size_multiple`.

    Returns
    -------
    padded : tensor, shape (..., H', W')
        ``H'``, ``W'`` the smallest multiples of ``m`` >= ``H``, ``W``; ``x`` itself if no padding
        is needed.
    crop : (slice, slice)
        ``padded[..., crop[0], crop[1]]`` is ``x`` again.
    """
    if x.dim() < 2 or x.dim() > 4:
        raise ValueError(f"pad_to_multiple expects a 2-D to 4-D tensor, got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    ph, pw = (-h) % m, (-w) % m
    top, left = ph // 2, pw // 2
    crop = (slice(top, top + h), slice(left, left + w))
    if ph == 0 and pw == 0:
        return x, crop
    lead = x.shape[:-2]
    x4 = x.reshape(-1, 1, h, w) if x.dim() != 4 else x
    mode = "reflect" if max(top, ph - top) < h and max(left, pw - left) < w else "replicate"
    out = F.pad(x4, (left, pw - left, top, ph - top), mode=mode)
    if x.dim() != 4:
        out = out.reshape(*lead, h + ph, w + pw)
    return out, crop


def _groups(channels: int) -> int:
    # EDM GroupNorm: num_groups = min(32, channels // 4), lowered to a divisor of channels (e.g.
    # 144 skip-concatenated channels -> 24 groups) since GroupNorm needs one.
    g = max(1, min(32, channels // 4))
    while channels % g:
        g -= 1
    return g


def _zero_(module: nn.Module) -> nn.Module:
    # EDM ``init_zero`` (init_weight=1e-5): the last layer of each residual branch starts ~0.
    nn.init.zeros_(module.weight)
    if getattr(module, "bias", None) is not None:
        nn.init.zeros_(module.bias)
    return module


class PositionalEmbedding(nn.Module):
    """Sinusoidal embedding of the noise label (EDM ``PositionalEmbedding``, endpoint=True).

    ``emb = [cos(c * f_k), sin(c * f_k)]`` with ``f_k = (1 / max_positions) ** (k / (n/2 - 1))``.
    """

    def __init__(self, num_channels: int, max_positions: int = 10000):
        super().__init__()
        self.num_channels = num_channels
        self.max_positions = max_positions

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        half = self.num_channels // 2
        freqs = torch.arange(half, dtype=torch.float32, device=c.device) / max(half - 1, 1)
        freqs = (1.0 / self.max_positions) ** freqs
        x = c.to(torch.float32).reshape(-1, 1) * freqs.reshape(1, -1)
        return torch.cat([x.cos(), x.sin()], dim=1)


class ResBlock(nn.Module):
    """EDM ``UNetBlock`` (adaptive_scale=True, skip_scale=sqrt(0.5)), without resampling.

    ``h = conv0(silu(norm0(x)))``; ``scale, shift = affine(emb)``;
    ``h = silu(norm1(h) * (1 + scale) + shift)``; ``h = conv1(dropout(h))``;
    ``out = (h + skip(x)) / sqrt(2)``.
    """

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm0 = nn.GroupNorm(_groups(c_in), c_in, eps=1e-5)
        self.conv0 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.affine = nn.Linear(emb_dim, 2 * c_out)
        self.norm1 = nn.GroupNorm(_groups(c_out), c_out, eps=1e-5)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv1 = _zero_(nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        orig = x
        h = self.conv0(F.silu(self.norm0(x)))
        scale, shift = self.affine(emb)[:, :, None, None].chunk(2, dim=1)
        h = F.silu(torch.addcmul(shift, self.norm1(h), scale + 1))
        h = self.conv1(self.dropout(h))
        return (h + (self.skip(orig) if self.skip is not None else orig)) * math.sqrt(0.5)


class AttentionBlock(nn.Module):
    """Multi-head self-attention over all pixels (EDM ``UNetBlock`` attention), residual."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(_groups(channels), channels, eps=1e-5)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = _zero_(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        a = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        a = a.transpose(-1, -2).reshape(b, c, h, w)
        return (x + self.proj(a)) * math.sqrt(0.5)


class UNet(nn.Module):
    """The conditional U-Net ``F_theta(x_in, c_noise)``.

    Parameters
    ----------
    config : UNetConfig

    Notes
    -----
    ``forward(x, c_noise)`` takes ``x`` of shape ``(B, in_channels, H, W)`` (H, W multiples of
    :attr:`size_multiple`) and ``c_noise`` of shape ``(B,)`` (EDM: ``ln(sigma) / 4``) and returns
    ``(B, out_channels, H, W)``.
    """

    def __init__(self, config: UNetConfig = UNetConfig()):
        super().__init__()
        self.config = cfg = config
        chans = [cfg.base_channels * m for m in cfg.channel_mult]
        e = cfg.emb_dim
        # EDM: map_noise (positional) -> map_layer0 -> silu -> map_layer1 -> silu.
        self.map_noise = PositionalEmbedding(cfg.base_channels)
        self.map_layer0 = nn.Linear(cfg.base_channels, e)
        self.map_layer1 = nn.Linear(e, e)

        self.stem = nn.Conv2d(cfg.in_channels, chans[0], 3, padding=1)
        self.enc = nn.ModuleList()
        self.down = nn.ModuleList()
        c = chans[0]
        for lvl, ch in enumerate(chans):
            blocks = nn.ModuleList()
            for _ in range(cfg.blocks_per_level):
                blocks.append(ResBlock(c, ch, e, cfg.dropout))
                c = ch
            self.enc.append(blocks)
            if lvl < len(chans) - 1:
                self.down.append(nn.Conv2d(c, chans[lvl + 1], 3, stride=2, padding=1))
                c = chans[lvl + 1]
        self.mid = ResBlock(c, c, e, cfg.dropout)
        self.attn = AttentionBlock(c, cfg.attention_heads) if cfg.attention else None
        self.dec = nn.ModuleList()
        self.up = nn.ModuleList()
        for lvl in reversed(range(len(chans))):
            ch = chans[lvl]
            blocks = nn.ModuleList()
            for i in range(cfg.blocks_per_level):
                blocks.append(ResBlock(c + ch if i == 0 else c, ch, e, cfg.dropout))
                c = ch
            self.dec.append(blocks)
            if lvl > 0:
                self.up.append(nn.Conv2d(c, chans[lvl - 1], 3, padding=1))
                c = chans[lvl - 1]
        self.out_norm = nn.GroupNorm(_groups(c), c, eps=1e-5)
        self.out_conv = _zero_(nn.Conv2d(c, cfg.out_channels, 3, padding=1))

    @property
    def size_multiple(self) -> int:
        """``H`` and ``W`` of the input must be multiples of this."""
        return self.config.size_multiple

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if x.dim() != 4 or x.shape[1] != cfg.in_channels:
            raise ValueError(f"UNet expects (B, {cfg.in_channels}, H, W), got {tuple(x.shape)}")
        m = cfg.size_multiple
        if x.shape[-2] % m or x.shape[-1] % m:
            raise ValueError(
                f"UNet input {tuple(x.shape[-2:])} is not a multiple of {m}; pad with pad_to_multiple"
            )
        c_noise = c_noise.reshape(-1).expand(x.shape[0]) if c_noise.numel() == 1 else c_noise.reshape(-1)
        emb = F.silu(self.map_layer1(F.silu(self.map_layer0(self.map_noise(c_noise)))))
        emb = emb.to(x.dtype)
        if x.device.type == "cpu":
            # oneDNN convolutions run ~1.5x faster on channels-last activations on CPU.
            x = x.contiguous(memory_format=torch.channels_last)

        h = self.stem(x)
        skips = []
        for lvl, blocks in enumerate(self.enc):
            for blk in blocks:
                h = blk(h, emb)
            skips.append(h)
            if lvl < len(self.down):
                h = self.down[lvl](h)
        h = self.mid(h, emb)
        if self.attn is not None:
            h = self.attn(h)
        for i, blocks in enumerate(self.dec):
            h = torch.cat([h, skips.pop()], dim=1)
            for blk in blocks:
                h = blk(h, emb)
            if i < len(self.up):
                h = self.up[i](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.out_conv(F.silu(self.out_norm(h))).contiguous()


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
