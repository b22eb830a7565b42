"""kgan.toy: the WGAN-GP toy problems and the mode-coverage score."""

import math

import numpy as np
import pytest

from kgan import toy

# 3 std in 2-D: P(chi_2 < 3) = 1 - exp(-9/2), not the 1-D 0.9973.
HIGH_QUALITY_2D = 1.0 - math.exp(-4.5)


def test_reference_constants():
    # gan_toy.py: ring radius 2 and std 0.02, grid step 2 and std 0.05, then
    # everything divided by 1.414 (ring) or 2.828 (grid).
    assert toy.RING_RADIUS == pytest.approx(2 / 1.414)
    assert toy.RING_STD == pytest.approx(0.02 / 1.414)
    assert toy.GRID_SCALE == pytest.approx(2 / 2.828)
    assert toy.GRID_STD == pytest.approx(0.05 / 2.828)


def test_ring_centers():
    centers = toy.ring_centers()
    assert centers.shape == (8, 2) and centers.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(centers, axis=1), 2 / 1.414, rtol=1e-6)
    np.testing.assert_allclose(centers[0], [2 / 1.414, 0], atol=1e-6)  # reference order
    angles = np.sort(np.mod(np.degrees(np.arctan2(centers[:, 1], centers[:, 0])), 360))
    np.testing.assert_allclose(angles, np.arange(0, 360, 45), atol=1e-4)
    assert toy.ring_centers(6).shape == (6, 2)


def test_grid_centers():
    centers = toy.grid_centers()
    assert centers.shape == (25, 2) and centers.dtype == np.float32
    expected = sorted((2 * x / 2.828, 2 * y / 2.828) for x in range(-2, 3) for y in range(-2, 3))
    np.testing.assert_allclose(sorted(map(tuple, centers)), expected, atol=1e-6)
    assert toy.grid_centers(3).shape == (9, 2)


@pytest.mark.parametrize("name, num_modes", [("ring8", 8), ("grid25", 25)])
def test_true_samples_cover_every_mode(name, num_modes):
    problem = toy.problem(name)
    assert problem.num_modes == num_modes and problem.dim == 2
    samples = problem.sample(20000, seed=0)
    assert samples.shape == (20000, 2) and samples.dtype == np.float32
    result = problem.coverage(samples)
    assert result["modes_covered"] == num_modes
    assert result["num_modes"] == num_modes
    # 20000 draws: the binomial std of the share is ~0.0007.
    assert result["high_quality"] == pytest.approx(HIGH_QUALITY_2D, abs=0.004)
    assert sum(result["mode_counts"]) == round(result["high_quality"] * 20000)
    assert min(result["mode_counts"]) > 0.5 * 20000 / num_modes  # roughly balanced


def test_samplers_are_seeded_and_match_problems():
    a = toy.ring_of_gaussians(100, seed=3)
    np.testing.assert_array_equal(a, toy.ring_of_gaussians(100, seed=3))
    np.testing.assert_array_equal(a, toy.problem("ring8").sample(100, seed=3))
    assert not np.array_equal(a, toy.ring_of_gaussians(100, seed=4))
    np.testing.assert_array_equal(toy.grid_of_gaussians(50, seed=1), toy.problem("grid25").sample(50, 1))
    wide = toy.ring_of_gaussians(5000, seed=0, radius=5.0, std=0.1)
    result = toy.mode_coverage(wide, toy.ring_centers(radius=5.0), 0.1)
    assert result["modes_covered"] == 8


def test_expected_high_quality_share():
    assert toy.expected_high_quality_share(3.0) == pytest.approx(HIGH_QUALITY_2D, rel=1e-12)
    assert toy.expected_high_quality_share(3.0, dim=1) == pytest.approx(0.9973002, rel=1e-6)


def test_tf_dataset_draws_fresh_points_from_the_problem():
    problem = toy.problem("grid25")
    batches = [b.numpy() for b in problem.dataset(256, seed=0).take(40)]
    assert batches[0].shape == (256, 2) and batches[0].dtype == np.float32
    assert not np.array_equal(batches[0], batches[1])
    again = next(iter(problem.dataset(256, seed=0))).numpy()
    np.testing.assert_array_equal(batches[0], again)
    result = problem.coverage(np.concatenate(batches))
    assert result["modes_covered"] == 25
    assert result["high_quality"] == pytest.approx(HIGH_QUALITY_2D, abs=0.01)


def test_collapsed_samples_cover_one_mode():
    centers = toy.ring_centers()
    samples = np.repeat(centers[3:4], 500, axis=0)
    result = toy.mode_coverage(samples, centers, toy.RING_STD)
    assert result["modes_covered"] == 1
    assert result["high_quality"] == 1.0
    assert result["mode_counts"][3] == 500 and sum(result["mode_counts"]) == 500


def test_far_samples_are_low_quality_and_min_count_applies():
    centers = toy.grid_centers()
    std = toy.GRID_STD
    far = centers[:2] + 10 * std  # assigned to a mode, but outside 3 std
    near = np.repeat(centers[5:6], 5, axis=0) + 0.5 * std
    result = toy.mode_coverage(np.concatenate([far, near]), centers, std)
    assert result["modes_covered"] == 1 and result["high_quality"] == pytest.approx(5 / 7)
    assert toy.mode_coverage(near, centers, std, min_count=6)["modes_covered"] == 0
    assert toy.mode_coverage(near, centers, std, threshold=0.1)["modes_covered"] == 0


def test_non_finite_samples_count_as_low_quality():
    centers = toy.ring_centers()
    samples = np.concatenate([centers, [[np.nan, 0.0], [np.inf, np.inf]]])
    result = toy.mode_coverage(samples, centers, toy.RING_STD)
    assert result["modes_covered"] == 8
    assert result["non_finite"] == 2
    assert result["high_quality"] == pytest.approx(8 / 10)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"samples": np.zeros(4)}, ValueError, r"shape \[N, D\]"),
        ({"samples": np.zeros((0, 2))}, ValueError, "empty"),
        ({"samples": np.zeros((4, 3))}, ValueError, "coordinates"),
        ({"samples": np.array([["a", "b"]])}, TypeError, "numeric"),
        ({"centers": np.array([[np.nan, 0.0]])}, ValueError, "NaN"),
        ({"std": 0.0}, ValueError, "std"),
        ({"std": -1.0}, ValueError, "std"),
        ({"threshold": 0}, ValueError, "threshold"),
        ({"min_count": 0}, ValueError, "min_count"),
        ({"min_count": 1.5}, TypeError, "min_count"),
    ],
)
def test_mode_coverage_rejects_bad_inputs(kwargs, error, match):
    args = {"samples": np.zeros((4, 2)), "centers": toy.ring_centers(), "std": 0.1}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        toy.mode_coverage(**args)


def test_samplers_reject_bad_arguments():
    with pytest.raises(ValueError, match="num"):
        toy.ring_of_gaussians(0)
    with pytest.raises(TypeError, match="num"):
        toy.grid_of_gaussians(2.5)
    with pytest.raises(ValueError, match="std"):
        toy.ring_of_gaussians(10, std=-0.1)
    with pytest.raises(ValueError, match="Unknown toy problem 'ring9'"):
        toy.problem("ring9")
