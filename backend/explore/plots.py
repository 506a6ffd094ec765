"""Plots of the voxel card, as functions that return a matplotlib figure (nilearn style): the pages show
them, and the command line or a notebook can save them."""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["plot_category_profile", "plot_receptive_field"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_category_profile(category_means: pd.DataFrame, figsize=(4.8, 2.4), dpi: int = 110):
    """Mean response (z) to the images containing each category, ± s.e.m., as horizontal bars
    (positive in red).

    Parameters
    ----------
    category_means : DataFrame
        Index = category, columns ``mean`` and ``sem`` (the voxel card's ``category_means``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=figsize, dpi=dpi)
    m = category_means.sort_values("mean")
    colours = ["#d62728" if v > 0 else "#7f7f7f" for v in m["mean"]]
    ax.barh(m.index, m["mean"], xerr=m["sem"], color=colours, capsize=2)
    ax.axvline(0, color="#333", lw=0.8)
    ax.set_xlabel("mean response (z)")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def plot_receptive_field(rf: dict, truth: dict | None = None, figsize=(3.6, 3.2), dpi: int = 110):
    """A receptive-field map over the visual field with the fitted Gaussian (solid, 1 sigma) and, when
    known, the true pRF (dashed green).

    Parameters
    ----------
    rf : dict
        From :func:`backend.explore.voxel_card.receptive_field` (``map``, ``x``, ``y``, ``sigma``, ``extent``; deg).
    truth : dict, optional
        The voxel card's ``truth`` (``prf_x``, ``prf_y``, ``prf_sigma``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _pyplot()
    from matplotlib.patches import Circle

    e = rf["extent"]
    fig, ax = plt.subplots(figsize=figsize, dpi=dpi)
    lim = float(np.abs(rf["map"]).max()) or 1.0
    im = ax.imshow(rf["map"], extent=(-e, e, -e, e), origin="upper", cmap="RdBu_r", vmin=-lim, vmax=lim)
    if rf["x"] is not None:
        ax.add_patch(Circle((rf["x"], rf["y"]), rf["sigma"], fill=False, color="k", lw=1.5))
        ax.plot(rf["x"], rf["y"], "k+")
    if truth and truth.get("prf_x") is not None:
        ax.add_patch(Circle((truth["prf_x"], truth["prf_y"]), truth["prf_sigma"], fill=False, color="#2ca02c",
                            lw=1.5, ls="--"))
    ax.axhline(0, color="#999", lw=0.5)
    ax.axvline(0, color="#999", lw=0.5)
    ax.set_xlim(-e, e)
    ax.set_ylim(-e, e)
    ax.set_xlabel("x (deg)")
    ax.set_ylabel("y (deg)")
    fig.colorbar(im, ax=ax, label="r", shrink=0.8)
    fig.tight_layout()
    return fig
