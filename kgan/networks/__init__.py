"""Reusable generator and discriminator builders."""

from kgan.networks.dcgan import dcgan_discriminator, dcgan_generator, stages_for
from kgan.networks.mlp import mlp_discriminator, mlp_generator

__all__ = [
    "dcgan_discriminator",
    "dcgan_generator",
    "mlp_discriminator",
    "mlp_generator",
    "stages_for",
]
