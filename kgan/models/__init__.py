"""kgan architectures; each is a `GAN` subclass overriding `train_step`."""

from kgan.models.conditional import ConditionalGAN
from kgan.models.cyclegan import CycleGAN, export_translator
from kgan.models.dcgan import DCGAN
from kgan.models.gan import GAN, InputDTypeError, InputValidationError, slerp
from kgan.models.wgan import WGAN, WGANGP

__all__ = [
    "ConditionalGAN",
    "CycleGAN",
    "DCGAN",
    "GAN",
    "InputDTypeError",
    "InputValidationError",
    "WGAN",
    "WGANGP",
    "export_translator",
    "slerp",
]
