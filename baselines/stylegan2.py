"""StyleGAN2 generator (Karras et al. 2020, config-f), with the parameter names of the widely used plain
state-dict conversion (rosinality/stylegan2-pytorch `convert_weight.py`: `{"g_ema": ..., "latent_avg": ...}`),
so a converted FFHQ generator loads with `torch.load(weights_only=True)` and a strict key check.

Layout (written from the paper; only the names follow the conversion):
- mapping `style.1` .. `style.N`: pixel norm, then N equalised-lr linear layers (lr multiplier 0.01) with a
  bias-then-leaky-ReLU(0.2) x sqrt(2) activation;
- `input.input`: the learned 4x4 constant; `conv1` + `to_rgb1` at 4x4; then per resolution 8 .. size two
  styled convs `convs.2k` (x2 upsampling: transposed conv then a [1,3,3,1] FIR blur) and `convs.2k+1`, and a
  skip `to_rgbs.k` whose running image is upsampled with the same FIR;
- a styled conv: modulation (`modulation`, bias initialised to 1), weight demodulation, per-layer noise
  (`noise.weight` x a noise map), bias + leaky ReLU x sqrt(2) (`activate.bias`);
- `noises.noise_K`: the fixed noise maps stored with the weights (what `noise_mode="const"` uses).

Sampling contract (fairbench.submission.generators): `forward(z, y=None)` maps N x style_dim Gaussian latents to
N x 3 x S x S images on [-1, 1]. Each sample is synthesised on its own (a batch of one), so the arithmetic of a
sample never depends on how many others share its batch: batch size cannot change a score. Training code
(e.g. rebalancing) calls `synthesize` for a batched, differentiable pass.
"""

from __future__ import annotations

import hashlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from fairbench.submission.generators import ARCHITECTURES

BLUR_TAPS = (1.0, 3.0, 3.0, 1.0)
NOISE_MODES = ("const", "none", "latent-seeded")
SQRT2 = math.sqrt(2.0)


def channel_table(channel_multiplier: int, channel_max: int = 512) -> dict[int, int]:
    """Feature maps per resolution in config-f (512 up to 32 px, then halving with the multiplier), capped at
    `channel_max` (512 in config-f; smaller only for tiny test networks of the same key layout)."""
    cm = channel_multiplier
    table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm, 512: 32 * cm, 1024: 16 * cm}
    return {res: min(ch, channel_max) for res, ch in table.items()}


def fir_kernel(taps=BLUR_TAPS) -> torch.Tensor:
    """The separable 2-D FIR: outer product of the taps, normalised to sum 1."""
    k = torch.tensor(taps, dtype=torch.float32)
    k2 = k[None, :] * k[:, None]
    return k2 / k2.sum()


def upfirdn(x: torch.Tensor, kernel: torch.Tensor, up: int, pad: tuple[int, int]) -> torch.Tensor:
    """Insert up-1 zeros after every pixel, zero-pad (before, after), convolve with `kernel` per channel."""
    n, c, h, w = x.shape
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1]).reshape(n, c, h * up, w * up)
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    weight = torch.flip(kernel, [0, 1]).to(x.dtype)[None, None].expand(c, 1, *kernel.shape)
    return F.conv2d(x, weight, groups=c)


def bias_leaky_relu(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """leaky_relu(x + bias, 0.2) * sqrt(2): the gain keeps activations' second moment roughly unchanged."""
    shape = [1, -1] + [1] * (x.ndim - 2)
    return F.leaky_relu(x + bias.view(shape), 0.2) * SQRT2


class EqualLinear(nn.Module):
    """Linear layer with runtime weight scaling 1/sqrt(fan_in) x lr_mul (equalised learning rate)."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0, activate: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale, self.lr_mul, self.activate = lr_mul / math.sqrt(in_dim), lr_mul, activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activate:
            return bias_leaky_relu(F.linear(x, self.weight * self.scale), self.bias * self.lr_mul)
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class Blur(nn.Module):
    """FIR low-pass after a transposed conv; the kernel is a buffer, as in the converted files."""

    def __init__(self, pad: tuple[int, int], gain: float):
        super().__init__()
        self.register_buffer("kernel", fir_kernel() * gain)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn(x, self.kernel, 1, self.pad)


class FirUpsample(nn.Module):
    """x2 upsampling of the skip image: zero insertion then the FIR (gain 4 keeps the mean)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("kernel", fir_kernel() * 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        taps = len(BLUR_TAPS)
        return upfirdn(x, self.kernel, 2, ((taps - 2 + 1) // 2 + 1, (taps - 2) // 2))


class ModulatedConv2d(nn.Module):
    """Per-sample weights: scaled by the style (modulation), optionally renormalised (demodulation)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, style_dim: int, demodulate: bool = True,
                 upsample: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, out_ch, in_ch, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_ch, bias_init=1.0)
        self.scale = 1 / math.sqrt(in_ch * kernel_size**2)
        self.in_ch, self.out_ch, self.k = in_ch, out_ch, kernel_size
        self.demodulate, self.upsample = demodulate, upsample
        if upsample:  # transposed conv (stride 2) then blur; pads make the output exactly twice the input
            p = (len(BLUR_TAPS) - 2) - (kernel_size - 1)
            self.blur = Blur(((p + 1) // 2 + 1, p // 2 + 1), gain=4.0)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        s = self.modulation(style).view(n, 1, self.in_ch, 1, 1)
        weight = self.scale * self.weight * s
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8).view(n, self.out_ch, 1, 1, 1)
        x = x.reshape(1, n * self.in_ch, h, w)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(n * self.in_ch, self.out_ch, self.k, self.k)
            out = F.conv_transpose2d(x, weight, stride=2, groups=n)
            out = self.blur(out.view(n, self.out_ch, *out.shape[2:]))
        else:
            weight = weight.reshape(n * self.out_ch, self.in_ch, self.k, self.k)
            out = F.conv2d(x, weight, padding=self.k // 2, groups=n)
            out = out.view(n, self.out_ch, *out.shape[2:])
        return out


class NoiseInjection(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        return x if noise is None else x + self.weight * noise


class StyledConv(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, style_dim: int, upsample: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, 3, style_dim, upsample=upsample)
        self.noise = NoiseInjection()
        self.activate = _BiasAct(out_ch)

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        return self.activate(self.noise(self.conv(x, style), noise))


class _BiasAct(nn.Module):
    """Holds `bias` (so the key reads `activate.bias`) for the bias + leaky ReLU x sqrt(2)."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return bias_leaky_relu(x, self.bias)


class ToRGB(nn.Module):
    def __init__(self, in_ch: int, style_dim: int, upsample: bool = True):
        super().__init__()
        if upsample:
            self.upsample = FirUpsample()
        self.conv = ModulatedConv2d(in_ch, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, style) + self.bias
        return out if skip is None else out + self.upsample(skip)


class ConstantInput(nn.Module):
    def __init__(self, channels: int, size: int = 4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, n: int) -> torch.Tensor:
        return self.input.expand(n, -1, -1, -1)


class StyleGAN2Generator(nn.Module):
    """Unconditional StyleGAN2 (config-f layout); see the module docstring.

    `truncation_psi` pulls w towards `latent_avg` (1.0: no truncation). `noise_mode`: "const" uses the stored
    noise maps `noises.noise_K` (deterministic, NVIDIA's `noise_mode='const'`), "none" no noise, and
    "latent-seeded" fresh noise per sample seeded by the sha256 of that sample's latent (deterministic, and
    independent of batch composition). `output_size` (default `size`) box-filters the image down by an integer
    factor (e.g. a 1024 px FFHQ generator scored at 256 px); the synthesis itself is unchanged.
    """

    def __init__(
        self, size: int, style_dim: int = 512, n_mlp: int = 8, channel_multiplier: int = 2, lr_mlp: float = 0.01,
        truncation_psi: float = 1.0, noise_mode: str = "const", output_size: int | None = None,
        channel_max: int = 512,
    ) -> None:
        super().__init__()
        log_size = int(round(math.log2(size))) if size > 0 else 0
        if size < 8 or 2**log_size != size or size > 1024:
            raise ValueError(f"size must be a power of two in [8, 1024], got {size}")
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {', '.join(NOISE_MODES)}, got {noise_mode!r}")
        if not 0.0 <= float(truncation_psi) <= 1.0:
            raise ValueError(f"truncation_psi must be within [0, 1], got {truncation_psi}")
        output_size = size if output_size is None else int(output_size)
        if output_size < 1 or size % output_size:
            raise ValueError(f"output_size must divide size {size}, got {output_size}")
        if channel_multiplier < 1 or style_dim < 1 or n_mlp < 1 or channel_max < 1:
            raise ValueError("channel_multiplier, channel_max, style_dim and n_mlp must be positive")
        self.size, self.style_dim, self.log_size = size, style_dim, log_size
        self.truncation_psi, self.noise_mode, self.output_size = float(truncation_psi), noise_mode, output_size
        self.latent_dim, self.num_classes = style_dim, 0  # the fairbench sampling contract
        self.n_latent = log_size * 2 - 2
        self.num_layers = (log_size - 2) * 2 + 1
        channels = channel_table(channel_multiplier, channel_max)

        self.style = nn.Sequential(
            PixelNorm(), *[EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activate=True) for _ in range(n_mlp)]
        )
        self.input = ConstantInput(channels[4])
        self.conv1 = StyledConv(channels[4], channels[4], style_dim)
        self.to_rgb1 = ToRGB(channels[4], style_dim, upsample=False)
        self.convs, self.to_rgbs, self.noises = nn.ModuleList(), nn.ModuleList(), nn.Module()
        for layer in range(self.num_layers):
            res = 2 ** ((layer + 5) // 2)
            self.noises.register_buffer(f"noise_{layer}", torch.randn(1, 1, res, res))
        in_ch = channels[4]
        for i in range(3, log_size + 1):
            out_ch = channels[2**i]
            self.convs.append(StyledConv(in_ch, out_ch, style_dim, upsample=True))
            self.convs.append(StyledConv(out_ch, out_ch, style_dim))
            self.to_rgbs.append(ToRGB(out_ch, style_dim))
            in_ch = out_ch
        # Mean w of the mapping network (the conversion stores it beside g_ema); used only when truncating.
        self.register_buffer("latent_avg", torch.zeros(style_dim))

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        w = self.style(z)
        if self.truncation_psi != 1.0:
            w = self.latent_avg + self.truncation_psi * (w - self.latent_avg)
        return w

    def _noise(self, z: torch.Tensor) -> list[torch.Tensor | None]:
        if self.noise_mode == "none":
            return [None] * self.num_layers
        stored = [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]
        if self.noise_mode == "const":
            return stored
        maps: list[list[torch.Tensor]] = [[] for _ in stored]
        for row in z.detach().to("cpu", torch.float32):
            digest = hashlib.sha256(row.numpy().tobytes()).digest()
            rng = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))
            for i, s in enumerate(stored):
                maps[i].append(torch.randn(tuple(s.shape[1:]), generator=rng))
        return [torch.stack(m).to(z.device, z.dtype) for m in maps]

    def synthesize(self, z: torch.Tensor) -> torch.Tensor:
        """Batched, differentiable z -> image at `size` (no clamping, no output resize)."""
        w = self.mapping(z)
        noise = self._noise(z)
        out = self.conv1(self.input(len(z)), w, noise[0])
        skip = self.to_rgb1(out, w)
        for k, to_rgb in enumerate(self.to_rgbs):
            out = self.convs[2 * k](out, w, noise[2 * k + 1])
            out = self.convs[2 * k + 1](out, w, noise[2 * k + 2])
            skip = to_rgb(out, w, skip)
        return skip

    def resize_output(self, images: torch.Tensor) -> torch.Tensor:
        factor = self.size // self.output_size
        return images if factor == 1 else F.avg_pool2d(images, factor)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is not None:
            raise ValueError("this StyleGAN2 generator is unconditional: it takes no class labels")
        if z.ndim != 2 or z.shape[1] != self.style_dim:
            raise ValueError(f"latents must be N x {self.style_dim}, got {tuple(z.shape)}")
        return torch.cat([self.resize_output(self.synthesize(z[i : i + 1])) for i in range(len(z))])


ARCHITECTURES.register("stylegan2", StyleGAN2Generator)
