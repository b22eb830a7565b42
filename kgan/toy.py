"""2-D toy problems for mode collapse: a ring of 8 and a grid of 25 Gaussians.

Both follow the WGAN-GP paper's toy code (Gulrajani et al. 2017,
`gan_toy.py` in github.com/igul222/improved_wgan_training), including its
final rescaling "divide by the standard deviation":

* **ring8** (`8gaussians` there): 8 isotropic Gaussians whose centers are the
  unit vectors at multiples of 45 degrees scaled by 2, with per-coordinate
  standard deviation 0.02; every point is then divided by 1.414. Centers lie on
  a circle of radius 2 / 1.414 ~= 1.4144 and the std is 0.02 / 1.414 ~= 0.01414.
* **grid25** (`25gaussians` there): 25 isotropic Gaussians centered at
  (2x, 2y) for x, y in -2..2, std 0.05; every point is then divided by 2.828.
  Neighbouring centers are 2 / 2.828 ~= 0.7072 apart (the grid spans about
  [-1.414, 1.414]) and the std is 0.05 / 2.828 ~= 0.01768.

Each sample picks its component uniformly at random. (The reference draws
ring points this way; for the grid it builds one fixed, exactly balanced set
of 100,000 points and cycles through it. Here the grid is sampled afresh,
which is the distribution that set approximates.)

`mode_coverage` scores generated points the way VEEGAN (Srivastava et al.
2017) and PacGAN (Lin et al. 2018) do: each sample is assigned to its nearest
center; it is *high quality* when it lies within 3 standard deviations of that
center; a mode is *covered* when at least `min_count` high-quality samples are
assigned to it.

Example:

```python
from kgan import toy
problem = toy.problem("ring8")
points = problem.sample(2500, seed=0)             # float32 [2500, 2]
toy.mode_coverage(points, problem.centers, problem.std)["modes_covered"]  # 8
```
"""

import dataclasses
import math
import numbers

import numpy as np

from kgan._checks import positive_int

__all__ = [
    "GRID_SCALE",
    "GRID_STD",
    "PROBLEMS",
    "RING_RADIUS",
    "RING_STD",
    "ToyProblem",
    "expected_high_quality_share",
    "grid_centers",
    "grid_of_gaussians",
    "mode_coverage",
    "problem",
    "ring_centers",
    "ring_of_gaussians",
]

# The reference's constants, kept in its form (value / divisor) so they can be
# checked against gan_toy.py at a glance.
RING_RADIUS = 2.0 / 1.414
RING_STD = 0.02 / 1.414
GRID_SCALE = 2.0 / 2.828
GRID_STD = 0.05 / 2.828


# ---------------------------------------------------------------------------
# Argument checks
def _check_points(value, name, finite=True):
    try:
        array = np.asarray(value)
    except Exception as err:  # ragged lists and the like
        raise TypeError(f"{name} must be a numeric [N, D] array: {err}") from err
    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise TypeError(f"{name} must be a numeric [N, D] array, got dtype {array.dtype}.")
    if array.ndim != 2:
        raise ValueError(f"{name} must have shape [N, D], got shape {array.shape}.")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {array.shape}).")
    if finite and not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    if np.issubdtype(array.dtype, np.floating):
        return array
    return array.astype(np.float32)


def _check_positive(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive number, got {value!r}.")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value}.")
    return float(value)




def ring_centers(num_modes=8, radius=RING_RADIUS):
    """Centers of the ring: `num_modes` points evenly spaced on a circle.

    With the defaults these are the reference's 8 centers, in its order: the
    four axis directions (+x, -x, +y, -y), then the four diagonals
    (+x+y, +x-y, -x+y, -x-y).

    Args:
        num_modes: number of Gaussians on the ring.
        radius: circle radius (default `2 / 1.414`, the reference's).

    Returns:
        float32 array `[num_modes, 2]`.

    Example:

    ```python
    ring_centers()[0]  # array([1.4144272, 0.], dtype=float32)
    ```
    """
    num_modes = positive_int(num_modes, "num_modes")
    radius = _check_positive(radius, "radius")
    if num_modes == 8:
        s = 1.0 / math.sqrt(2.0)
        unit = [(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)]
        unit = np.asarray(unit, np.float64)
    else:
        angles = 2.0 * np.pi * np.arange(num_modes) / num_modes
        unit = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return (radius * unit).astype(np.float32)


def grid_centers(size=5, scale=GRID_SCALE):
    """Centers of the grid: `scale * (x, y)` for x, y in `-(size//2)..size//2`.

    With the defaults these are the reference's 25 centers `(2x, 2y) / 2.828`,
    x-major as its nested loops.

    Args:
        size: points per side; odd sizes center the grid on the origin.
        scale: spacing between neighbouring centers.

    Returns:
        float32 array `[size * size, 2]`.

    Example:

    ```python
    grid_centers().shape  # (25, 2)
    ```
    """
    size = positive_int(size, "size")
    scale = _check_positive(scale, "scale")
    axis = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    xs, ys = np.meshgrid(axis, axis, indexing="ij")
    return (scale * np.stack([xs.ravel(), ys.ravel()], axis=1)).astype(np.float32)


def _mixture_sample(centers, std, num, seed):
    num = positive_int(num, "num")
    std = _check_positive(std, "std")
    rng = np.random.default_rng(seed)
    component = rng.integers(0, len(centers), size=num)
    noise = rng.standard_normal((num, centers.shape[1]))
    return (centers[component].astype(np.float64) + std * noise).astype(np.float32)


def ring_of_gaussians(num, seed=0, num_modes=8, radius=RING_RADIUS, std=RING_STD):
    """`num` points from the ring of Gaussians (WGAN-GP's `8gaussians`).

    Args:
        num: number of points.
        seed: numpy seed; the same seed gives the same points on any machine.
        num_modes: Gaussians on the ring.
        radius: ring radius (default `2 / 1.414`).
        std: per-coordinate standard deviation (default `0.02 / 1.414`).

    Returns:
        float32 array `[num, 2]`.

    Example:

    ```python
    points = ring_of_gaussians(1000, seed=0)
    ```
    """
    return _mixture_sample(ring_centers(num_modes, radius), std, num, seed)


def grid_of_gaussians(num, seed=0, size=5, scale=GRID_SCALE, std=GRID_STD):
    """`num` points from the grid of Gaussians (WGAN-GP's `25gaussians`).

    Args:
        num: number of points.
        seed: numpy seed.
        size: Gaussians per side (5 gives 25).
        scale: spacing of the centers (default `2 / 2.828`).
        std: per-coordinate standard deviation (default `0.05 / 2.828`).

    Returns:
        float32 array `[num, 2]`.

    Example:

    ```python
    points = grid_of_gaussians(1000, seed=0)
    ```
    """
    return _mixture_sample(grid_centers(size, scale), std, num, seed)


@dataclasses.dataclass(frozen=True, eq=False)
class ToyProblem:
    """A mixture of equally weighted isotropic Gaussians with a common std.

    Attributes:
        name: registry name (`"ring8"`, `"grid25"`).
        centers: float32 `[num_modes, dim]` means.
        std: per-coordinate standard deviation of every component.
        description: where the definition comes from.

    Example:

    ```python
    problem = ToyProblem("pair", np.array([[-1, 0], [1, 0]], "float32"), 0.1)
    train = problem.dataset(batch_size=256, seed=0)   # infinite tf.data pipeline
    ```
    """

    name: str
    centers: np.ndarray
    std: float
    description: str = ""

    def __post_init__(self):
        centers = _check_points(self.centers, "centers")
        object.__setattr__(self, "centers", centers)
        object.__setattr__(self, "std", _check_positive(self.std, "std"))

    @property
    def num_modes(self):
        """Number of Gaussians."""
        return len(self.centers)

    @property
    def dim(self):
        """Dimension of a point."""
        return int(self.centers.shape[1])

    def sample(self, num, seed=0):
        """`num` float32 points `[num, dim]`, reproducible from a numpy `seed`.

        Example:

        ```python
        from kgan import toy
        points = toy.problem("grid25").sample(1000, seed=0)  # float32 [1000, 2]
        ```
        """
        return _mixture_sample(self.centers, self.std, num, seed)

    def dataset(self, batch_size, seed=0):
        """An infinite `tf.data.Dataset` of fresh float32 `[batch_size, dim]` batches.

        Points are drawn inside TensorFlow (stateless ops keyed by `seed` and
        the batch index), so the pipeline never runs Python per batch and
        never reuses a point: a trainer sees the true distribution, not a
        finite sample of it.

        Example:

        ```python
        from kgan import toy
        train = toy.problem("ring8").dataset(batch_size=256, seed=0)  # never ends
        batch = next(iter(train))  # float32 tensor [256, 2]
        ```
        """
        import tensorflow as tf

        batch_size = positive_int(batch_size, "batch_size")
        centers = tf.constant(self.centers)
        std = float(self.std)
        num_modes, dim = self.num_modes, self.dim
        base = tf.constant([int(seed) & 0x7FFFFFFF, 0x6B67616E], tf.int64)  # "kgan"

        def draw(index):
            key = tf.random.experimental.stateless_fold_in(base, index)
            keys = tf.random.experimental.stateless_split(key, num=2)
            component = tf.random.stateless_uniform(
                [batch_size], keys[0], minval=0, maxval=num_modes, dtype=tf.int32
            )
            noise = tf.random.stateless_normal([batch_size, dim], keys[1], dtype=tf.float32)
            return tf.gather(centers, component) + std * noise

        return tf.data.Dataset.counter().map(draw).prefetch(tf.data.AUTOTUNE)

    def coverage(self, samples, threshold=3.0, min_count=1):
        """`mode_coverage(samples, self.centers, self.std, ...)`.

        Example:

        ```python
        from kgan import toy
        ring = toy.problem("ring8")
        ring.coverage(ring.sample(2500, seed=0), min_count=20)["modes_covered"]  # 8
        ```
        """
        return mode_coverage(samples, self.centers, self.std, threshold, min_count)


PROBLEMS = {
    "ring8": ToyProblem(
        "ring8",
        ring_centers(),
        RING_STD,
        "8 Gaussians on a circle of radius 2, std 0.02, all divided by 1.414 "
        "(WGAN-GP gan_toy.py, '8gaussians')",
    ),
    "grid25": ToyProblem(
        "grid25",
        grid_centers(),
        GRID_STD,
        "5x5 Gaussians at (2x, 2y), x, y in -2..2, std 0.05, all divided by 2.828 "
        "(WGAN-GP gan_toy.py, '25gaussians')",
    ),
}


def problem(name):
    """The registered `ToyProblem` called `name` (`"ring8"` or `"grid25"`).

    Example:

    ```python
    from kgan import toy
    grid = toy.problem("grid25")
    grid.num_modes, grid.dim, grid.std  # (25, 2, 0.01768...)
    ```
    """
    if name not in PROBLEMS:
        raise ValueError(f"Unknown toy problem {name!r}; known: {', '.join(PROBLEMS)}.")
    return PROBLEMS[name]


def expected_high_quality_share(threshold=3.0, dim=2):
    """Share of true samples within `threshold` std of their own center.

    `P(|x - c| < t * std)` for an isotropic Gaussian in `dim` dimensions, the
    chi distribution's CDF: `1 - exp(-t^2 / 2)` in 2-D (0.98889 at t = 3, not
    the 1-D 0.9973). The measured share of true samples can be slightly higher:
    a point outside its own radius may still fall near another center.

    Example:

    ```python
    expected_high_quality_share(3.0)  # 0.98889...
    ```
    """
    from scipy import special

    threshold = _check_positive(threshold, "threshold")
    dim = positive_int(dim, "dim")
    return float(special.gammainc(dim / 2.0, threshold**2 / 2.0))


def mode_coverage(samples, centers, std, threshold=3.0, min_count=1, chunk_size=65536):
    """Modes covered by `samples` and the share of high-quality samples.

    Each sample goes to its nearest center (Euclidean; the components share
    one isotropic std, so this is also the nearest in standard deviations). It
    is high quality when that distance is below `threshold * std`. A mode is
    covered when at least `min_count` high-quality samples go to it.

    `min_count=1` is the convention of VEEGAN and of PacGAN's released
    evaluation code (a mode counts once any high-quality sample lands on it);
    with 2500 samples on 8 or 25 modes (about 312 or 100 per mode), raise it
    (e.g. to 20) for a test that ignores a few stray points. Per-mode counts
    are returned, so any other cut can be applied afterwards.

    Non-finite samples (a diverged generator) are counted as low quality.

    Args:
        samples: `[N, D]` array of generated points.
        centers: `[K, D]` array of mode centers.
        std: per-coordinate standard deviation of each mode, > 0.
        threshold: radius in standard deviations (default 3).
        min_count: high-quality samples a mode needs to count as covered.
        chunk_size: samples per distance computation (bounds memory).

    Returns:
        dict with `modes_covered` (int), `num_modes`, `high_quality` (share
        of all samples, float), `mode_counts` (list of high-quality samples
        per mode), `num_samples`, `non_finite` (count), `threshold`,
        `min_count`.

    Raises:
        ValueError: for arrays of the wrong rank, mismatched dimensions, no
            samples or centers, non-finite centers, or a non-positive `std`,
            `threshold` or `min_count`.
        TypeError: for non-numeric arrays or a non-integer `min_count`.

    Example:

    ```python
    result = mode_coverage(gan.generate(2500, seed=0), toy.ring_centers(), toy.RING_STD)
    result["modes_covered"], result["high_quality"]
    ```
    """
    samples = _check_points(samples, "samples", finite=False)
    centers = _check_points(centers, "centers")
    if samples.shape[1] != centers.shape[1]:
        raise ValueError(
            f"samples have {samples.shape[1]} coordinates but centers have "
            f"{centers.shape[1]}; both must be [N, D] with the same D."
        )
    std = _check_positive(std, "std")
    threshold = _check_positive(threshold, "threshold")
    min_count = positive_int(min_count, "min_count")
    chunk_size = positive_int(chunk_size, "chunk_size")

    finite = np.all(np.isfinite(samples), axis=1)
    radius_sq = (threshold * std) ** 2
    c = centers.astype(np.float64)
    counts = np.zeros(len(c), np.int64)
    for start in range(0, len(samples), chunk_size):
        x = samples[start : start + chunk_size].astype(np.float64)
        ok = finite[start : start + chunk_size]
        x = x[ok]
        sq = ((x[:, None, :] - c[None, :, :]) ** 2).sum(axis=-1)
        nearest = np.argmin(sq, axis=1)
        good = sq[np.arange(len(x)), nearest] < radius_sq
        counts += np.bincount(nearest[good], minlength=len(c))
    return {
        "modes_covered": int(np.sum(counts >= min_count)),
        "num_modes": int(len(c)),
        "high_quality": float(counts.sum() / len(samples)),
        "mode_counts": [int(n) for n in counts],
        "num_samples": int(len(samples)),
        "non_finite": int(np.sum(~finite)),
        "threshold": threshold,
        "min_count": min_count,
    }
