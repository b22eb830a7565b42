"""kgan: a model zoo of generative adversarial networks for Keras 3.

Example:

```python
import kgan
gan = kgan.zoo.load("dcgan_mnist")
kgan.images.save_grid(gan.generate(64, seed=0), "digits.png")
```
"""

__version__ = "0.1.0"

from kgan import ada, augment, callbacks, data, export, images, layers, losses, metrics, models, networks
from kgan import bench, evaluation, evaluators, performance, sampling, schedules, toy
from kgan import translation_evaluation, zoo
from kgan.export import export_generator
from kgan.models import DCGAN, GAN, WGAN, WGANGP, ConditionalGAN, CycleGAN

__all__ = [
    "ConditionalGAN",
    "CycleGAN",
    "DCGAN",
    "ada",
    "augment",
    "bench",
    "GAN",
    "callbacks",
    "data",
    "evaluation",
    "evaluators",
    "export",
    "export_generator",
    "images",
    "layers",
    "losses",
    "metrics",
    "models",
    "networks",
    "sampling",
    "performance",
    "schedules",
    "toy",
    "translation_evaluation",
    "WGAN",
    "WGANGP",
    "zoo",
]
