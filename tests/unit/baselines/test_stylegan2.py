"""StyleGAN2 generator: key layout against the published config-f architecture, the math of its pieces against
independent computations, determinism and each image depending on its latent alone, and the importer's refusals."""

from __future__ import annotations

import math
import pickle
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baselines.stylegan2 import StyleGAN2Generator, channel_table, fir_kernel, upfirdn
from baselines.stylegan2_import import ImportOptions, import_stylegan2, read_converted
from fairbench.submission import checkpoint as ckpt_io
from fairbench.submission import sampling
from fairbench.errors import FairbenchError


def tiny(size=32, **kw) -> StyleGAN2Generator:
    torch.manual_seed(0)
    g = StyleGAN2Generator(size, style_dim=16, n_mlp=2, channel_multiplier=1, channel_max=32, **kw)
    with torch.no_grad():  # non-zero noise strengths and biases, so every term of the forward pass matters
        for name, p in g.named_parameters():
            if name.endswith(("noise.weight", "activate.bias", "to_rgb1.bias")) or ".bias" in name:
                p.add_(0.1 * torch.randn_like(p))
    return g.eval()


# ---------------------------------------------------------------------------------------- layout (config-f)
def expected_config_f_params(size: int, style: int = 512, n_mlp: int = 8, cm: int = 2) -> int:
    """Parameter count written out from the paper's config-f description, layer by layer."""
    ch = channel_table(cm)
    mod = lambda c_in: style * c_in + c_in  # noqa: E731  (affine to the input channels, bias)
    styled = lambda c_in, c_out: c_out * c_in * 9 + mod(c_in) + 1 + c_out  # noqa: E731  (+noise strength, bias)
    rgb = lambda c_in: 3 * c_in + mod(c_in) + 3  # noqa: E731
    total = n_mlp * (style * style + style) + ch[4] * 16 + styled(ch[4], ch[4]) + rgb(ch[4])
    c_in = ch[4]
    for log_res in range(3, int(math.log2(size)) + 1):
        c_out = ch[2**log_res]
        total += styled(c_in, c_out) + styled(c_out, c_out) + rgb(c_out)
        c_in = c_out
    return total


@pytest.mark.parametrize("size", [256, 1024])
def test_config_f_layout_matches_the_published_architecture(size):
    with torch.device("meta"):  # shapes only: a 1024 px config-f would otherwise allocate 120 MB
        g = StyleGAN2Generator(size)
    params = dict(g.named_parameters())
    n_params = sum(p.numel() for p in params.values())
    assert n_params == expected_config_f_params(size)
    # Per-layer counts that NVIDIA's own network printouts show for config-f (TF `G_mapping/Dense0` 262656;
    # stylegan2-ada-pytorch `synthesis.b4.conv1` 2622465, `synthesis.b4.torgb` 264195, const 8192).
    assert params["style.1.weight"].numel() + params["style.1.bias"].numel() == 262656
    assert sum(p.numel() for k, p in params.items() if k.startswith("conv1.")) == 2622465
    assert sum(p.numel() for k, p in params.items() if k.startswith("to_rgb1.")) == 264195
    assert params["input.input"].numel() == 8192
    if size == 1024:
        assert n_params == 30_370_060  # ~30.4M: the figure rosinality's Generator(1024, 512, 8, 2) also gives
    log = int(math.log2(size))
    keys = g.state_dict().keys()
    assert sum(k.startswith("noises.noise_") for k in keys) == 2 * (log - 2) + 1
    assert sum(re.fullmatch(r"to_rgbs\.\d+\.bias", k) is not None for k in keys) == log - 2
    assert sum(k.endswith("conv.weight") and k.startswith("convs.") for k in keys) == 2 * (log - 2)
    # Buffers the conversion carries: FIR kernels of the upsampling convs and skip upsamplers, the noise maps.
    assert {"convs.0.conv.blur.kernel", "to_rgbs.0.upsample.kernel", "noises.noise_0"} <= set(keys)
    shapes = {k: tuple(v.shape) for k, v in g.state_dict().items()}
    assert shapes["convs.0.conv.weight"] == (1, 512, 512, 3, 3)
    assert shapes["convs.0.conv.modulation.weight"] == (512, 512)
    assert shapes["to_rgbs.0.conv.weight"] == (1, 3, 512, 1, 1)
    assert shapes["to_rgbs.0.bias"] == (1, 3, 1, 1)
    assert shapes[f"noises.noise_{2 * (log - 2)}"] == (1, 1, size, size)
    last = 2 * (log - 3) + 1
    assert shapes[f"convs.{last}.conv.weight"] == (1, 32, 32, 3, 3) if size == 1024 else (1, 128, 128, 3, 3)


# ---------------------------------------------------------------------------------------- pieces
def test_upfirdn_upsample_is_zero_insertion_then_fir():
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64)
    k = fir_kernel().double() * 4
    out = upfirdn(x, k, 2, (2, 1))
    assert out.shape == (1, 2, 10, 10)
    # independent: explicit zero-stuffed image, padding, and a direct sum over the 4x4 taps
    z = torch.zeros(1, 2, 10, 10, dtype=torch.float64)
    z[..., ::2, ::2] = x
    zp = F.pad(z, [2, 1, 2, 1])
    ref = torch.zeros_like(out)
    for i in range(4):
        for j in range(4):
            ref += k[3 - i, 3 - j] * zp[..., i : i + 10, j : j + 10]
    torch.testing.assert_close(out, ref)
    # a constant image stays constant away from the borders (gain 4 restores the mean after zero insertion)
    c = upfirdn(torch.ones(1, 1, 6, 6, dtype=torch.float64), k, 2, (2, 1))
    torch.testing.assert_close(c[..., 2:-2, 2:-2], torch.ones_like(c[..., 2:-2, 2:-2]))


def test_modulated_conv_equals_per_sample_scaled_conv():
    g = tiny()
    layer = g.convs[1].conv  # 3x3, no upsampling
    x, w = torch.randn(2, layer.in_ch, 8, 8), torch.randn(2, 16)
    out = layer(x, w)
    for n in range(2):
        s = layer.modulation(w[n : n + 1])[0]
        weight = layer.scale * layer.weight[0] * s[None, :, None, None]
        weight = weight / torch.sqrt((weight**2).sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
        torch.testing.assert_close(out[n : n + 1], F.conv2d(x[n : n + 1], weight, padding=1), rtol=1e-4, atol=1e-5)


def test_mapping_and_truncation():
    g = tiny()
    z = torch.randn(3, 16)
    h = z / torch.sqrt((z**2).mean(1, keepdim=True) + 1e-8)
    for layer in list(g.style)[1:]:
        pre = h @ (layer.weight * 0.01 / 4).T + layer.bias * 0.01  # lr_mul 0.01, fan_in 16
        h = F.leaky_relu(pre, 0.2) * math.sqrt(2)
    torch.testing.assert_close(g.mapping(z), h, rtol=1e-5, atol=1e-6)
    g.latent_avg.copy_(torch.randn(16))
    g.truncation_psi = 0.5
    torch.testing.assert_close(g.mapping(z), g.latent_avg + 0.5 * (h - g.latent_avg), rtol=1e-5, atol=1e-6)
    g.truncation_psi = 0.0
    torch.testing.assert_close(g.mapping(z), g.latent_avg.expand(3, -1))


def test_channel_max_caps_only_the_width():
    with torch.device("meta"):
        full, capped = StyleGAN2Generator(64, channel_multiplier=1), StyleGAN2Generator(64, channel_multiplier=1, channel_max=32)
    assert full.state_dict().keys() == capped.state_dict().keys()
    assert capped.state_dict()["convs.0.conv.weight"].shape == (1, 32, 32, 3, 3)
    assert full.state_dict()["convs.6.conv.weight"].shape == (1, 256, 512, 3, 3)  # 64 px: 256 x multiplier 1


def test_output_shape_range_and_box_downsampling():
    g = tiny(32, output_size=8)
    z = torch.randn(2, 16)
    out = g(z)
    assert out.shape == (2, 3, 8, 8)
    full = g.synthesize(z)
    assert full.shape == (2, 3, 32, 32)
    torch.testing.assert_close(out, full.reshape(2, 3, 8, 4, 8, 4).mean(dim=(3, 5)), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="unconditional"):
        g(z, torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError):
        StyleGAN2Generator(48)
    with pytest.raises(ValueError):
        StyleGAN2Generator(32, output_size=12)


# ---------------------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("noise_mode", ["const", "latent-seeded", "none"])
def test_sampling_is_deterministic_and_each_image_depends_on_its_latent_alone(noise_mode):
    g = tiny(32, noise_mode=noise_mode)
    a, _ = sampling.generate(g, 7, seed=3, image_shape=(3, 32, 32), num_classes=0)
    b, _ = sampling.generate(g, 7, seed=3, image_shape=(3, 32, 32), num_classes=0)
    assert torch.equal(a, b)
    z = torch.randn(7, 16, generator=torch.Generator().manual_seed(3))  # the latents `generate` draws
    with torch.no_grad():
        alone = torch.cat([sampling.to_uint8(g(z[i : i + 1])) for i in range(7)])
    assert (alone.int() - a.int()).abs().max() <= 1  # equal up to a rounding flip from the call's shape
    assert a.float().std() > 1  # not a constant image


def test_noise_modes_differ_and_latent_seeded_depends_only_on_the_sample():
    z = torch.randn(4, 16)
    const, seeded, none = (tiny(32, noise_mode=m)(z) for m in ("const", "latent-seeded", "none"))
    assert not torch.allclose(const, seeded) and not torch.allclose(const, none)
    g = tiny(32, noise_mode="latent-seeded")
    torch.testing.assert_close(g(z[2:3]), seeded[2:3])  # alone or in a batch of four: same sample


# ---------------------------------------------------------------------------------------- importer
def save_converted(tmp_path, g: StyleGAN2Generator, latent_avg=True, name="sg2.pt", mutate=None):
    sd = {k: v for k, v in g.state_dict().items() if k != "latent_avg"}
    if mutate:
        mutate(sd)
    blob = {"g_ema": sd}
    if latent_avg:
        blob["latent_avg"] = torch.randn(g.style_dim)
    path = tmp_path / name
    torch.save(blob, path)
    return path


@pytest.fixture
def tiny_task():
    from tests.helpers.ffhq import tiny_ffhq_task

    return tiny_ffhq_task(8)


def test_import_round_trip_gives_the_same_images(tmp_path, tiny_task):
    g = tiny(32)
    path = save_converted(tmp_path, g)
    out = tmp_path / "ckpt.pt"
    ckpt = import_stylegan2(path, out, tiny_task, ImportOptions(channel_multiplier=1, truncation_psi=0.7))
    assert ckpt.arch == "stylegan2" and ckpt.arch_kwargs["size"] == 32 and ckpt.arch_kwargs["output_size"] == 8
    assert ckpt.arch_kwargs["channel_max"] == 32 and ckpt.arch_kwargs["style_dim"] == 16 and ckpt.arch_kwargs["n_mlp"] == 2
    assert ckpt.config["truncation_psi"] == 0.7 and len(ckpt.config["source_sha256"]) == 64
    assert ckpt.method == "stylegan2-32px-psi0.7"
    loaded = ckpt_io.load_checkpoint(out)
    model = ckpt_io.build_generator(loaded, out)
    g.output_size, g.truncation_psi = 8, 0.7
    g.latent_avg.copy_(torch.load(path, weights_only=True)["latent_avg"])
    z = torch.randn(3, 16)
    torch.testing.assert_close(model(z), g(z))


def test_import_names_missing_unexpected_and_misshaped_keys(tmp_path, tiny_task):
    g = tiny(32)
    opts = ImportOptions(channel_multiplier=1)
    path = save_converted(tmp_path, g, mutate=lambda sd: sd.pop("convs.1.noise.weight"))
    with pytest.raises(FairbenchError, match=r"missing keys convs\.1\.noise\.weight"):
        import_stylegan2(path, tmp_path / "o.pt", tiny_task, opts)
    path = save_converted(tmp_path, g, mutate=lambda sd: sd.__setitem__("extra.weight", torch.zeros(1)))
    with pytest.raises(FairbenchError, match=r"unexpected keys extra\.weight"):
        import_stylegan2(path, tmp_path / "o.pt", tiny_task, opts)
    bad = save_converted(
        tmp_path, g, name="bad.pt", mutate=lambda sd: sd.__setitem__("convs.0.conv.weight", torch.zeros(1, 8, 8, 3, 3))
    )
    with pytest.raises(FairbenchError, match=r"wrong shapes convs\.0\.conv\.weight \[1, 8, 8, 3, 3\]"):
        import_stylegan2(bad, tmp_path / "o.pt", tiny_task, opts)
    path = save_converted(tmp_path, g, mutate=lambda sd: sd["convs.0.conv.blur.kernel"].mul_(2))
    with pytest.raises(FairbenchError, match="FIR"):
        import_stylegan2(path, tmp_path / "o.pt", tiny_task, opts)
    assert not (tmp_path / "o.pt").exists()


def test_import_without_latent_avg_refuses_truncation(tmp_path, tiny_task):
    path = save_converted(tmp_path, tiny(32), latent_avg=False)
    with pytest.raises(FairbenchError, match="no latent_avg"):
        import_stylegan2(path, tmp_path / "o.pt", tiny_task, ImportOptions(channel_multiplier=1, truncation_psi=0.5))
    ckpt = import_stylegan2(path, tmp_path / "o.pt", tiny_task, ImportOptions(channel_multiplier=1))
    assert ckpt.config["latent_avg_in_file"] is False


class _Code:  # a pickled object whose loading would import this test module: what an NVIDIA .pkl does
    pass


def test_pkl_files_are_refused_by_extension_and_by_content(tmp_path):
    pkl = tmp_path / "network-snapshot.pkl"
    pkl.write_bytes(pickle.dumps({"G_ema": _Code()}))
    with pytest.raises(FairbenchError, match="convert_weight.py"):
        read_converted(pkl)
    disguised = tmp_path / "looks-fine.pt"
    disguised.write_bytes(pickle.dumps({"G_ema": _Code()}))
    with pytest.raises(FairbenchError, match="raw Python pickle"):
        read_converted(disguised)
    # a torch zip archive holding code is refused by weights_only=True
    evil = tmp_path / "evil.pt"
    torch.save({"g_ema": {"x": torch.zeros(1)}, "obj": _Code()}, evil)
    with pytest.raises(FairbenchError, match="refused"):
        read_converted(evil)


def test_legacy_torch_format_is_not_mistaken_for_a_pickle(tmp_path):
    g = tiny(32)
    path = tmp_path / "legacy.pt"
    torch.save({"g_ema": {k: v for k, v in g.state_dict().items() if k != "latent_avg"}}, path,
               _use_new_zipfile_serialization=False)
    g_ema, latent = read_converted(path)
    assert latent is None and set(g_ema) == set(g.state_dict()) - {"latent_avg"}
    assert np.isfinite(sum(v.sum().item() for v in g_ema.values()))


def test_a_fresh_process_finds_the_architecture_through_the_plugins():
    """`fairbench score` in a new process rebuilds `stylegan2` from the checkpoint's name alone."""
    import subprocess
    import sys

    code = "from fairbench.plugins import load_plugins; from fairbench.submission.generators import ARCHITECTURES; " \
           "load_plugins(); print('stylegan2' in ARCHITECTURES)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_a_generator_smaller_than_the_task_is_refused(tmp_path):
    from tests.helpers.ffhq import tiny_ffhq_task

    path = save_converted(tmp_path, tiny(32))
    with pytest.raises(FairbenchError, match="32 px generator cannot be scored at task ffhq-race's 64 px"):
        import_stylegan2(path, tmp_path / "o.pt", tiny_ffhq_task(64), ImportOptions(channel_multiplier=1))
