"""Per-video colour models of skin, hair and clothes, as lookup tables over quantised BGR.

Why histograms and not Gaussian mixtures: hair has highlights and shadows, clothes have prints,
so each class is multi-modal, and a smoothed 3-D histogram captures that without choosing a
component count. Evaluated as a table (32 levels per channel, 32768 bins), a model costs one
gather per pixel, whatever its shape; that keeps parsing at video rate on a CPU.

Samples come from places whose class the geometry already tells (see `talkprep.geometry.masks`):
the face polygon for skin, person pixels above the forehead for hair, the bottom of the person for
clothes. Those regions are impure (a fringe over the forehead, hair hanging to the chest), so each
model is refit a few times with its samples weighted by how much better it explains them than
the others do. Skin and hair samples are repeated at lower brightness, so that a neck in the
chin's shadow is still skin and hair hanging in shadow still hair.

Colour alone cannot tell fair hair from the neck, nor the neck's shadowed side from dark hair.
Texture can: strands of hair are full of fine detail, skin is smooth. `TextureModels` are
per-video histograms of the local detail (`talkprep.geometry.masks.texture_map`) at the same
sample pixels, so that what counts as detailed follows the video's own sharpness (a 256 px
webcam clip and a 4K interview differ tenfold); they weigh in below the face, where long hair,
the neck and the clothes meet.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.ndimage import gaussian_filter

LEVELS = 32
"""Quantisation levels per BGR channel."""
SHIFT = 3
"""256 / LEVELS = 2**SHIFT."""
BITS = 5
"""LEVELS = 2**BITS: bits per channel in a bin index."""
N_BINS = LEVELS**3
SKIN, HAIR, CLOTHES = 0, 1, 2
N_MODELS = 3
SMOOTH_BINS = 1.0
"""Gaussian smoothing of the histograms, in bins (8 grey levels): fills gaps between samples."""
FLOOR = 1e-6
"""Probability mass spread over every bin, so that unseen colours are unlikely, not impossible."""
MIN_SAMPLES = 200
"""A model with fewer samples than this is unknown (uniform)."""
UNKNOWN_DENSITY = np.exp(-3.0) / N_BINS
"""Density of every colour under a model without samples: below uniform, so that a class never
seen where the geometry looks for it (no clothes in a tight crop) does not win every colour
that the known models explain less than evenly (hair in shadow, a highlight)."""
REFITS = 3
"""Reweighting rounds of `fit_colour_models`."""
SHADES = (1.0, 0.8, 0.62, 0.48)
"""Brightness factors at which skin samples are repeated (see `shaded_bins`)."""
HAIR_SHADES = (1.0, 0.75, 0.55)
"""Hair in shadow (hanging over the shoulders) keeps its hue too, within a narrower range."""


def quantise(image_bgr: np.ndarray) -> np.ndarray:
    """int32 [H, W]: the histogram bin of each pixel's colour."""
    q = (image_bgr >> SHIFT).astype(np.int32)
    return (q[..., 0] << (2 * BITS)) | (q[..., 1] << BITS) | q[..., 2]


def histogram(bins: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """float64 [N_BINS]: smoothed, floored, normalised colour density of samples (bin indices)."""
    counts = np.bincount(bins.ravel(), weights=weights, minlength=N_BINS).astype(np.float64)
    counts = gaussian_filter(counts.reshape(LEVELS, LEVELS, LEVELS), SMOOTH_BINS, mode="nearest")
    counts = counts.ravel()
    total = counts.sum()
    if total <= 0:
        return np.full(N_BINS, 1.0 / N_BINS)
    return (counts / total) * (1.0 - FLOOR) + FLOOR / N_BINS


def overlap(p: np.ndarray, q: np.ndarray) -> float:
    """Bhattacharyya coefficient of two densities: 1 when they are the same, 0 when disjoint."""
    return float(np.sqrt(p * q).sum())


@dataclass(frozen=True)
class ColourModels:
    """Log-likelihood tables of the three appearance classes and how far they can be told apart."""

    log_likelihood: np.ndarray
    """float32 [N_MODELS, N_BINS]: log density of each bin under skin, hair, clothes."""
    known: np.ndarray
    """bool [N_MODELS]: whether a class had enough samples to be modelled at all."""
    hair_differs_from_skin: bool
    """False for a bald or shaved head (the crown is skin-coloured): then below the jaw no pixel is
    called hair, since colour cannot tell hair from neck skin there."""
    skin_overlap: float
    """Bhattacharyya coefficient of the hair and skin densities (a figure for the manifest)."""

    def likelihoods(self, bins: np.ndarray) -> np.ndarray:
        """float32 [N_MODELS, H, W]: log-likelihood of each pixel's colour under each model."""
        return self.log_likelihood[:, bins]

    @cached_property
    def skin_given_colour(self) -> np.ndarray:
        """float32 [N_BINS]: P(skin | colour) of each bin, the three classes equally likely."""
        relative = np.exp(self.log_likelihood - self.log_likelihood.max(axis=0))
        return (relative[SKIN] / relative.sum(axis=0)).astype(np.float32)


HAIR_SKIN_OVERLAP_MAX = 0.6
"""Above this Bhattacharyya coefficient hair and skin are taken to be the same colour."""


def fit_colour_models(samples: list[np.ndarray]) -> ColourModels:
    """Models from bin samples of skin, hair and clothes (in that order).

    Each model is refit REFITS times with its samples weighted by their posterior under the
    previous fit (equal class priors), which drains hair out of the clothes samples and forehead
    skin out of the hair samples.
    """
    known = np.array([s.size >= MIN_SAMPLES for s in samples])
    lit = samples
    samples = [
        shaded_bins(lit[SKIN], SHADES),
        shaded_bins(lit[HAIR], HAIR_SHADES),
        lit[CLOTHES],
    ]
    models = [
        histogram(s) if ok else np.full(N_BINS, UNKNOWN_DENSITY)
        for s, ok in zip(samples, known, strict=True)
    ]
    for _ in range(REFITS):
        stack = np.stack(models)
        refit = []
        for k, (s, ok) in enumerate(zip(samples, known, strict=True)):
            if not ok:
                refit.append(models[k])
                continue
            dens = stack[:, s]
            weight = dens[k] / dens.sum(axis=0)
            refit.append(histogram(s, weight) if weight.sum() >= MIN_SAMPLES / 4 else models[k])
        models = refit
    # bald or not: lit skin against the hair samples that the final models call hair
    final = np.stack(models)
    hair_weight = final[HAIR, lit[HAIR]] / final[:, lit[HAIR]].sum(axis=0) if known[HAIR] else None
    skin_overlap = overlap(histogram(lit[SKIN]), histogram(lit[HAIR], hair_weight))
    return ColourModels(
        log_likelihood=np.log(np.stack(models)).astype(np.float32),
        known=known,
        hair_differs_from_skin=bool(known[HAIR] and known[SKIN])
        and skin_overlap < HAIR_SKIN_OVERLAP_MAX,
        skin_overlap=round(skin_overlap, 4),
    )


TEXTURE_BINS = 24
"""Histogram bins of the detail, evenly spaced in its logarithm over TEXTURE_RANGE."""
TEXTURE_RANGE = (0.05, 20.0)
"""Detail (grey levels) covered by the bins; values outside fall in the end bins."""
TEXTURE_SMOOTH_BINS = 1.0
"""Gaussian smoothing of the detail histograms, in bins."""
TEXTURE_FLOOR = 0.01
"""Probability mass spread evenly over the detail bins: detail alone never rules a class out."""
TEXTURE_OVERLAP_MAX = 0.8
"""Above this Bhattacharyya coefficient of the hair and skin detail densities, detail cannot
tell them apart (a blurred video, smooth hair) and is not used."""
_TEXTURE_EDGES = np.linspace(np.log(TEXTURE_RANGE[0]), np.log(TEXTURE_RANGE[1]), TEXTURE_BINS + 1)


def texture_bins(detail: np.ndarray) -> np.ndarray:
    """int32 [...]: the detail histogram bin of each value."""
    logs = np.log(np.maximum(np.asarray(detail, np.float32), np.float32(TEXTURE_RANGE[0] / 2)))
    step = (_TEXTURE_EDGES[-1] - _TEXTURE_EDGES[0]) / TEXTURE_BINS
    bins = np.floor((logs - np.float32(_TEXTURE_EDGES[0])) * np.float32(1.0 / step))
    return np.clip(bins, 0, TEXTURE_BINS - 1).astype(np.int32)


@dataclass(frozen=True)
class TextureModels:
    """Log-likelihood tables of the local detail under skin, hair and clothes."""

    log_likelihood: np.ndarray
    """float32 [N_MODELS, TEXTURE_BINS]; even over the bins for a class without samples."""
    hair_skin_overlap: float
    """Bhattacharyya coefficient of the hair and skin detail densities (1 without samples)."""

    @property
    def informative(self) -> bool:
        """Whether detail tells hair from skin in this video."""
        return self.hair_skin_overlap < TEXTURE_OVERLAP_MAX

    def relative_likelihoods(self, detail: np.ndarray) -> np.ndarray:
        """float32 [N_MODELS, H, W]: each pixel's detail likelihood under each model over the
        largest of the three (what weighs colour posteriors; a table gather, no exp per pixel)."""
        relative = np.exp(self.log_likelihood - self.log_likelihood.max(axis=0))
        return relative.astype(np.float32)[:, texture_bins(detail)]


def fit_texture_models(samples: list[np.ndarray]) -> TextureModels:
    """Models from detail samples (float arrays) of skin, hair and clothes, in that order, taken
    at the pixels of the colour samples."""
    densities = []
    for values in samples:
        if values.size < MIN_SAMPLES:
            densities.append(np.full(TEXTURE_BINS, 1.0 / TEXTURE_BINS))
            continue
        counts = np.bincount(texture_bins(values), minlength=TEXTURE_BINS).astype(np.float64)
        counts = gaussian_filter(counts, TEXTURE_SMOOTH_BINS, mode="nearest")
        densities.append(
            counts / counts.sum() * (1.0 - TEXTURE_FLOOR) + TEXTURE_FLOOR / TEXTURE_BINS
        )
    known = samples[SKIN].size >= MIN_SAMPLES and samples[HAIR].size >= MIN_SAMPLES
    coefficient = overlap(densities[SKIN], densities[HAIR]) if known else 1.0
    return TextureModels(
        log_likelihood=np.log(np.stack(densities)).astype(np.float32),
        hair_skin_overlap=round(coefficient, 4),
    )


def shaded_bins(bins: np.ndarray, factors: tuple[float, ...] = SHADES) -> np.ndarray:
    """Colour bins repeated at each brightness factor: skin in shadow (under the chin, on the
    neck) keeps its hue, so the skin model learns it from the lit face."""
    mask = LEVELS - 1
    channels = [(bins >> (2 * BITS)) & mask, (bins >> BITS) & mask, bins & mask]
    centres = np.stack(channels, axis=-1) * (1 << SHIFT) + (1 << (SHIFT - 1))
    out = [np.clip(centres * f, 0, 255).astype(np.uint8) for f in factors]
    return quantise(np.concatenate(out)[:, None])[:, 0]
