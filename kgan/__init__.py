"""kgan: a model zoo of generative adversarial networks for Keras 3.

Example:

```python
import kgan
gan = kgan.zoo.load("dcgan_mnist")
kgan.images.save_grid(gan.generate(64, seed=0), "digits.png")
```
"""

__version__ = "0.1.0"

from kgan import augment, callbacks, data, export, images, layers, losses, metrics, models, networks
from kgan import schedules, zoo
from kgan.export import export_generator
from kgan.models import DCGAN, GAN, WGAN, WGANGP, CycleGAN

__all__ = [
    "CycleGAN",
    "DCGAN",
    "augment",
    "GAN",
    "callbacks",
    "data",
    "export",
    "export_generator",
    "images",
    "layers",
    "losses",
    "metrics",
    "models",
    "networks",
    "schedules",
    "WGAN",
    "WGANGP",
    "zoo",
]
