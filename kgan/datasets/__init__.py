"""Small datasets that install with kgan, so every feature works offline.

This package holds the data files and the scripts that rebuild them
(``python -m kgan.datasets.make_mnist_5k``, ``make_digits_8x8``); read the
data through :mod:`kgan.data` (for example :func:`kgan.data.load_mnist_5k`,
``kgan.data.load("mnist_5k")`` or ``kgan.data.embedded_split("digits_8x8")``).
It is a package, not a plain folder, so that ``importlib.resources`` can find
the files whether kgan is installed from a wheel, a zip or a source checkout.
See ``README.md`` in this folder for where each file comes from and its license.

Example:
    >>> from kgan import data
    >>> images, labels = data.load_mnist_5k()
    >>> images.shape
    (5000, 28, 28, 1)
"""
