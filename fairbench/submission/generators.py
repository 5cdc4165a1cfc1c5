"""Generator architectures, registered by name so a checkpoint can be rebuilt without unpickling code.

A registered factory takes plain keyword arguments (ints, floats, strings, lists) and returns a module with
`latent_dim` and `num_classes` attributes and `forward(z, y)` giving N x C x H x W images on the [-1, 1]
scale (values outside it are clamped when sampled).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from fairbench.registry import Registry

ARCHITECTURES: Registry[Callable[..., nn.Module]] = Registry("generator architecture")
