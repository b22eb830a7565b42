"""kgan architectures; each is a `GAN` subclass overriding `train_step`."""

from kgan.models.dcgan import DCGAN
from kgan.models.gan import GAN, InputValidationError, slerp
from kgan.models.wgan import WGAN, WGANGP

__all__ = ["DCGAN", "GAN", "InputValidationError", "WGAN", "WGANGP", "slerp"]
