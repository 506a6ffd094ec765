"""Single-trial betas -> per-image responses and noise ceilings, as NSD does it.

The one preprocessing path for every world (synthetic, NSD, Algonauts):
z-score each voxel within each session, then average the repeats of each image.
The noise-ceiling SNR (``ncsnr``) and noise ceiling follow Allen et al. (2022), NSD:

* noise sd  = sqrt(mean over images of the unbiased variance of the image's z-scored betas),
  computed on the images that have all three repeats (on images with >= 2 repeats when none has 3);
* signal sd = sqrt(max(1 - noise sd^2, 0))   (betas are z-scored, so total variance is 1);
* ncsnr     = signal sd / noise sd;
* NC (%)    = 100 * ncsnr^2 / (ncsnr^2 + (A/3 + B/2 + C/1) / (A + B + C)),
  A, B, C = number of images averaged over 3, 2 and 1 repeats.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..errors import InvalidInputError

__all__ = ["zscore_session", "noise_ceiling", "ncsnr_from_trials", "RepeatAverager"]


def zscore_session(betas: np.ndarray) -> np.ndarray:
    """Z-score each voxel over the trials of one session, ignoring NaN trials.

    betas: (n_trials, n_voxels) -> (n_trials, n_voxels) float32 (NaN stays NaN)."""
    b = np.asarray(betas, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mu = np.nanmean(b, axis=0)
        sd = np.nanstd(b, axis=0)
    sd = np.where(np.isfinite(sd) & (sd > 0), sd, 1.0).astype(np.float32)
    return (b - mu) / sd


def noise_ceiling(ncsnr, n_images_by_reps: dict[int, int]) -> np.ndarray:
    """NSD noise ceiling in percent of variance for the average of each image's repeats.

    ncsnr: (n_voxels,). n_images_by_reps: {number of repeats averaged: number of images},
    e.g. {3: A, 2: B, 1: C}."""
    ncsnr = np.asarray(ncsnr, np.float64)
    total = sum(n_images_by_reps.values())
    if total == 0:
        raise InvalidInputError("noise ceiling needs at least one image")
    noise = sum(count / reps for reps, count in n_images_by_reps.items()) / total
    return (100 * ncsnr ** 2 / (ncsnr ** 2 + noise)).astype(np.float32)


def ncsnr_from_trials(trials_by_image: list[np.ndarray]) -> np.ndarray:
    """ncsnr from z-scored betas grouped by image: a list of (n_reps_i, n_voxels) arrays."""
    full = max(t.shape[0] for t in trials_by_image)
    use = [t for t in trials_by_image if t.shape[0] == min(full, 3)] if full >= 2 else []
    if not use:
        raise InvalidInputError("ncsnr needs images with at least two repeats")
    var = np.mean([np.var(t, axis=0, ddof=1) for t in use], axis=0)
    signal = np.sqrt(np.maximum(1 - var, 0))
    return (signal / np.sqrt(var)).astype(np.float32)


class RepeatAverager:
    """Streams z-scored sessions in and gives per-image means, repeat counts and ncsnr out.

    Parameters
    ----------
    n_images : number of distinct images (rows of the result)
    n_voxels : number of voxels (columns)
    """

    def __init__(self, n_images: int, n_voxels: int):
        self.sum = np.zeros((n_images, n_voxels), np.float32)
        self.sumsq = np.zeros((n_images, n_voxels), np.float32)
        self.count = np.zeros((n_images, n_voxels), np.uint8)
        self.trials = np.zeros(n_images, np.int32)  # presentations, NaN or not

    def add_session(self, zbetas: np.ndarray, image_rows: np.ndarray) -> None:
        """zbetas: (n_trials, n_voxels) z-scored betas; image_rows: (n_trials,) row of each trial's image."""
        valid = np.isfinite(zbetas)
        z = np.where(valid, zbetas, 0).astype(np.float32)
        np.add.at(self.trials, image_rows, 1)
        # fancy-index += is fast but drops duplicates: add one occurrence of each image at a time
        remaining = np.arange(image_rows.size)
        while remaining.size:
            _, first = np.unique(image_rows[remaining], return_index=True)
            sel = remaining[first]
            rows = image_rows[sel]
            self.sum[rows] += z[sel]
            self.sumsq[rows] += z[sel] ** 2
            self.count[rows] += valid[sel]
            remaining = np.delete(remaining, first)

    def result(self, block: int = 1024):
        """Returns (betas (n_images, n_voxels) float32 with NaN where no valid trial, reps (n_images,),
        ncsnr (n_voxels,), NaN when no image was shown twice).

        Consumes the accumulator: the betas are written over its sums, ``block`` voxels at a time, so the peak
        memory stays that of the accumulator itself (a full-size subject's import depends on it)."""
        n_vox = self.sum.shape[1]
        reps = self.trials
        full = min(int(reps.max()) if reps.size else 0, 3)
        ncsnr = np.full(n_vox, np.nan, np.float32)
        for a in range(0, n_vox, block):
            sl = slice(a, a + block)
            c = self.count[:, sl].astype(np.float32)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(c > 0, self.sum[:, sl] / np.maximum(c, 1), np.nan).astype(np.float32)
                if full >= 2:
                    var = (self.sumsq[:, sl] - c * mean ** 2) / (c - 1)
                    use = c == full  # per voxel: images with all `full` repeats valid
                    n_use = use.sum(axis=0)
                    noise_var = np.where(use, var, 0).sum(axis=0) / np.maximum(n_use, 1)
                    noise_var = np.where(n_use > 0, noise_var, np.nan)
                    signal = np.sqrt(np.maximum(1 - noise_var, 0))
                    ncsnr[sl] = signal / np.sqrt(noise_var)
            self.sum[:, sl] = mean
        mean, self.sum, self.sumsq = self.sum, None, None
        return mean, reps, ncsnr
