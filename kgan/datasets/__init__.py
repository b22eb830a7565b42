"""Small datasets that install with kgan, so every feature works offline.

This package holds data files only; read them through :mod:`kgan.data`
(for example :func:`kgan.data.load_mnist_5k` or ``kgan.data.load("mnist_5k")``).
It is a package, not a plain folder, so that ``importlib.resources`` can find
the files whether kgan is installed from a wheel, a zip or a source checkout.
See ``README.md`` in this folder for where each file comes from and its license.

Example:
    >>> from kgan import data
    >>> images, labels = data.load_mnist_5k()
    >>> images.shape
    (5000, 28, 28, 1)
"""
