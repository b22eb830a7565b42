"""Reusable generator and discriminator builders."""

from kgan.networks.dcgan import dcgan_discriminator, dcgan_generator, stages_for

__all__ = ["dcgan_discriminator", "dcgan_generator", "stages_for"]
