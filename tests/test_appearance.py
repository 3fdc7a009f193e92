"""Per-video colour models: bins, shading, reweighting, and when hair cannot be told from skin."""

from __future__ import annotations

import numpy as np

from talkprep.geometry.appearance import (
    CLOTHES,
    HAIR,
    N_BINS,
    SKIN,
    TEXTURE_BINS,
    fit_colour_models,
    fit_texture_models,
    quantise,
    shaded_bins,
    texture_bins,
)


def samples(bgr: tuple[int, int, int], n: int = 2000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(bgr) + rng.normal(0, 6, (n, 3)), 0, 255).astype(np.uint8)
    return quantise(pixels[:, None])[:, 0]


def test_quantise_and_shade() -> None:
    pixel = np.array([[[200, 100, 40]]], np.uint8)
    bins = quantise(pixel)
    assert bins.shape == (1, 1) and bins[0, 0] == (25 << 10) | (12 << 5) | 5
    darker = shaded_bins(bins.ravel(), (1.0, 0.5))
    assert darker[0] == bins[0, 0] and darker[1] == quantise(np.array([[[100, 50, 20]]]))[0, 0]


def test_models_tell_colours_apart_and_drain_impure_samples() -> None:
    skin, hair, clothes = (120, 150, 200), (40, 55, 90), (150, 60, 30)
    # a fifth of the clothes samples are hair (long hair over the chest)
    impure = np.concatenate([samples(clothes), samples(hair, 500, seed=1)])
    models = fit_colour_models([samples(skin), samples(hair, seed=2), impure])
    assert models.known.all() and models.hair_differs_from_skin
    for colour, expected in ((skin, SKIN), (hair, HAIR), (clothes, CLOTHES)):
        bins = samples(colour, 200, seed=3)
        assert (models.likelihoods(bins).argmax(axis=0) == expected).mean() > 0.9, expected
        skin_p = models.skin_given_colour[bins]  # P(skin | colour), the classes equally likely
        assert (skin_p > 0.9).mean() > 0.9 if expected == SKIN else (skin_p < 0.5).mean() > 0.9
    scores = models.likelihoods(np.arange(N_BINS))
    relative = np.exp(scores - scores.max(axis=0))
    assert np.allclose(models.skin_given_colour, relative[SKIN] / relative.sum(axis=0))


def test_bald_head_hair_equals_skin_and_missing_samples_are_unknown() -> None:
    skin = (120, 150, 200)
    bald = fit_colour_models([samples(skin), samples(skin, seed=1), samples((150, 60, 30))])
    assert not bald.hair_differs_from_skin and bald.skin_overlap > 0.6
    few = fit_colour_models([samples(skin), samples((40, 55, 90), 50), samples((150, 60, 30))])
    assert few.known.tolist() == [True, False, True] and not few.hair_differs_from_skin


def detail_samples(median: float, n: int = 3000, seed: int = 0) -> np.ndarray:
    """Detail values (texture_map's grey levels) spread log-normally about a median."""
    return np.exp(np.random.default_rng(seed).normal(np.log(median), 0.4, n)).astype(np.float32)


def test_detail_models_tell_strands_from_smooth_skin() -> None:
    models = fit_texture_models(
        [detail_samples(0.3), detail_samples(2.5, seed=1), detail_samples(0.15, seed=2)]
    )
    assert models.informative and models.hair_skin_overlap < 0.2
    relative = models.relative_likelihoods(np.float32([[0.3], [2.5]]))
    assert relative.shape == (3, 2, 1) and relative.max() == 1.0 and relative.min() > 0
    values = np.float32([0.3, 2.5, 40.0, 0.0])  # past both ends of the bins too
    best = models.relative_likelihoods(values).argmax(axis=0)
    assert best[0] != HAIR and best[1] == HAIR and best[2] == HAIR and best[3] == CLOTHES
    assert texture_bins(np.float32([0.0, 1e9])).tolist() == [0, TEXTURE_BINS - 1]


def test_detail_that_cannot_tell_hair_from_skin_is_not_used() -> None:
    blurred = fit_texture_models(
        [detail_samples(0.3), detail_samples(0.35, seed=1), detail_samples(0.3, seed=2)]
    )
    assert not blurred.informative and blurred.hair_skin_overlap > 0.8
    no_hair = fit_texture_models([detail_samples(0.3), detail_samples(2.5, 50), np.zeros(0)])
    assert not no_hair.informative and no_hair.hair_skin_overlap == 1.0
    assert np.ptp(no_hair.log_likelihood[CLOTHES]) == 0  # a class without samples is even
