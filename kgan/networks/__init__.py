"""Reusable generator and discriminator builders."""

from kgan.networks.conditional import conditional_generator, projection_discriminator
from kgan.networks.cyclegan import (
    patchgan_discriminator,
    patchgan_output_size,
    patchgan_receptive_field,
    paper_residual_blocks,
    resnet_generator,
)
from kgan.networks.dcgan import dcgan_discriminator, dcgan_generator, stages_for
from kgan.networks.mlp import mlp_discriminator, mlp_generator

__all__ = [
    "conditional_generator",
    "dcgan_discriminator",
    "dcgan_generator",
    "mlp_discriminator",
    "mlp_generator",
    "patchgan_discriminator",
    "patchgan_output_size",
    "patchgan_receptive_field",
    "paper_residual_blocks",
    "projection_discriminator",
    "resnet_generator",
    "stages_for",
]
