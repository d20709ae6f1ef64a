import math
import random

from abr_tune.hpo.race import compare, cs_radius, pooled_sigma, race_sigma


def test_radius_matches_the_closed_form():
    # n=1, sigma=1, rho=1, alpha=0.05: sqrt(2 * log(2 / 0.0025)) = sqrt(2 * log 800)
    assert math.isclose(cs_radius(1, 1.0, 0.05, rho=1.0), math.sqrt(2 * math.log(800)), rel_tol=1e-12)
    assert math.isclose(cs_radius(3, 2.0, 0.05, rho=4.0), 2.0 * math.sqrt(4 * math.log(4 / 0.0025)) / 3, rel_tol=1e-12)
    # the default rho = sigma**2 / 4: at n=1 sqrt(1.25 * log(1.25 / (0.25 * 0.0025))) = sqrt(1.25 * log 2000)
    assert math.isclose(cs_radius(1, 1.0, 0.05), math.sqrt(1.25 * math.log(2000)), rel_tol=1e-12)
    assert all(cs_radius(n, 1.0, 0.05) < cs_radius(n, 1.0, 0.05, rho=1.0) for n in (1, 2, 3))  # narrower early
    assert cs_radius(10, 1.0, 0.05) < cs_radius(3, 1.0, 0.05)  # it shrinks with n
    assert cs_radius(0, 1.0, 0.05) == math.inf


def test_pooled_sigma_about_each_groups_mean():
    assert math.isclose(pooled_sigma([[1.0, 3.0], [10.0, 12.0]]), math.sqrt(2.0))
    assert math.isnan(pooled_sigma([[1.0], [2.0]]))
    assert race_sigma({"a": [0.0, 0.0]}, base_mean=2.0, floor=0.05) == 0.1
    assert race_sigma({"a": [1.0, 3.0]}, base_mean=2.0, floor=0.05) == math.sqrt(2.0)  # the spread seen widens it
    assert race_sigma({"a": [1.0]}, base_mean=2.0, floor=0.05) == 0.1  # no spread seen yet: the declared one


def test_decisions_follow_the_mode_and_wait_for_min_seeds():
    assert compare([-1.0, -1.1], sigma=0.05, alpha=0.05, mode="min").decision == "better"
    assert compare([-1.0, -1.1], sigma=0.05, alpha=0.05, mode="max").decision == "worse"
    assert compare([-1.0], sigma=0.05, alpha=0.05, mode="min").decision == "undecided"
    assert compare([-0.01, 0.01], sigma=0.05, alpha=0.05, mode="min").decision == "undecided"


def test_the_error_rate_holds_under_optional_stopping_with_known_sigma():
    # No true difference: look after every one of 20 seeds and stop at the first decision.
    rng = random.Random(0)
    false = 0
    for _ in range(4000):
        diffs = []
        for _ in range(20):
            diffs.append(rng.gauss(0.0, 1.0))
            if compare(diffs, 1.0, 0.05, "min", min_seeds=1).decision != "undecided":
                false += 1
                break
    assert false / 4000 <= 0.05
