"""Plots shared by every chapter: heatmaps of attention weights, translation alignments, 1-D fits.

Importing this module applies the course style (`use_course_style`): a clean look and a CJK font
fallback, so that figures can label Chinese tokens ("我 爱 机器 学习") without missing glyphs.
Every function accepts torch tensors (on any device, with or without grad) or array-likes and
returns the matplotlib object it drew on.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

__all__ = [
    "CJK_FONT",
    "use_course_style",
    "plot_heatmap",
    "plot_heatmaps",
    "plot_attention",
    "plot_kernel_regression",
]

CJK_FONT = "Noto Sans CJK SC"
"""The family used as a fallback for glyphs (Chinese, Japanese, Korean) missing from the default font."""

_COURSE_RC = {
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "figure.figsize": (6.4, 4.0),
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "legend.frameon": False,
    "image.interpolation": "nearest",
}


def _register_cjk_font() -> bool:
    """Add the Noto Sans CJK collection shipped by the `noto_cjk_sans_otc` package, once.

    Returns True when the font is available to matplotlib.
    """
    try:
        import noto_cjk_sans_otc
    except ImportError:  # the figures still work; Chinese labels would show as boxes
        return False
    path = str(noto_cjk_sans_otc.FONT_PATH)
    manager = matplotlib.font_manager.fontManager
    if not any(entry.fname == path for entry in manager.ttflist):
        manager.addfont(path)
    return True


def use_course_style() -> None:
    """Apply the course's matplotlib style; safe to call any number of times.

    Sets a clean default look (dpi 100, no top/right spines, no legend frame, nearest-neighbour
    images) and registers Noto Sans CJK as a *fallback* font: matplotlib draws each character with
    the first family in ``rcParams["font.family"]`` that has it, so Latin text keeps the default
    sans font and only CJK characters come from Noto Sans CJK SC.
    """
    matplotlib.rcParams.update(_COURSE_RC)
    if not _register_cjk_font():
        return
    sans = list(matplotlib.rcParams["font.sans-serif"])
    if CJK_FONT not in sans:
        sans.insert(1 if sans else 0, CJK_FONT)  # right after the default sans font
        matplotlib.rcParams["font.sans-serif"] = sans
    family = list(matplotlib.rcParams["font.family"])
    if CJK_FONT not in family:
        matplotlib.rcParams["font.family"] = [*family, CJK_FONT]


def _to_numpy(x) -> np.ndarray:
    """A float numpy copy of a tensor (any device, dtype, grad) or array-like."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64)
        return x.numpy()
    return np.asarray(x, dtype=np.float64)


def _to_matrix(matrix, name: str = "matrix") -> np.ndarray:
    data = _to_numpy(matrix)
    if data.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows x columns), got shape {tuple(data.shape)}")
    return data


def _check_labels(labels: Sequence | None, expected: int, what: str, shape: tuple[int, ...]) -> list[str] | None:
    if labels is None:
        return None
    labels = [str(label) for label in labels]
    if len(labels) != expected:
        raise ValueError(f"matrix of shape {shape} has {expected} {what}s but {len(labels)} {what} labels were given")
    return labels


def plot_heatmap(
    matrix,
    *,
    row_labels: Sequence | None = None,
    col_labels: Sequence | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    xlabel: str | None = "keys",
    ylabel: str | None = "queries",
    cmap: str = "Reds",
    annotate: bool = False,
    fmt: str = ".2f",
    vmin: float | None = None,
    vmax: float | None = None,
    colorbar: bool = True,
) -> Axes:
    """Draw a 2-D matrix (e.g. attention weights, queries x keys) as a heatmap.

    Args:
        matrix: (rows, cols) tensor or array-like.
        row_labels, col_labels: tick labels, one per row / column (long column labels are rotated).
        ax: the Axes to draw on; a new figure sized to the matrix when None.
        title, xlabel, ylabel: text for the Axes.
        cmap, vmin, vmax: colour map and its range (the data range when None).
        annotate: write each value in its cell with format ``fmt`` (for small matrices).
        colorbar: add a colour bar next to the Axes.

    Returns:
        The Axes drawn on; the image is ``ax.images[-1]``.
    """
    data = _to_matrix(matrix)
    rows, cols = data.shape
    row_labels = _check_labels(row_labels, rows, "row", data.shape)
    col_labels = _check_labels(col_labels, cols, "column", data.shape)
    if ax is None:
        width = min(max(0.45 * cols + 2.0, 3.5), 8.0)
        height = min(max(0.45 * rows + 1.2, 2.5), 7.0)
        _, ax = plt.subplots(figsize=(width, height), layout="constrained")

    image = ax.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
    for spine in ax.spines.values():
        spine.set_visible(False)
    if col_labels is not None:
        ax.set_xticks(range(cols))
        if max((len(label) for label in col_labels), default=0) > 3:
            ax.set_xticklabels(col_labels, rotation=45, ha="right", rotation_mode="anchor")
        else:
            ax.set_xticklabels(col_labels)
    if row_labels is not None:
        ax.set_yticks(range(rows))
        ax.set_yticklabels(row_labels)
    if annotate:
        for r in range(rows):
            for c in range(cols):
                value = data[r, c]
                dark = np.isfinite(value) and image.norm(value) > 0.6
                ax.text(c, r, format(value, fmt), ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")
    if title is not None:
        ax.set_title(title)
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return ax


def plot_heatmaps(
    matrices,
    *,
    titles: Sequence[str] | None = None,
    ncols: int | None = None,
    row_labels: Sequence | None = None,
    col_labels: Sequence | None = None,
    share_scale: bool = True,
    figsize: tuple[float, float] | None = None,
    suptitle: str | None = None,
    **kwargs,
) -> Figure:
    """A grid of heatmaps, e.g. the attention weights of several models or heads side by side.

    Args:
        matrices: a sequence of 2-D tensors/arrays, or one 3-D tensor/array (one heatmap per slice
            of the first dimension).
        titles: one title per heatmap.
        ncols: heatmaps per row (all in one row, up to 4, when None).
        row_labels, col_labels: tick labels used for every heatmap.
        share_scale: one colour range (and one colour bar) for all heatmaps, so colours compare
            across panels; otherwise each panel gets its own range and colour bar.
        figsize: the figure size in inches (sized to the grid when None).
        suptitle: a title for the whole figure.
        **kwargs: passed to `plot_heatmap` (``cmap``, ``xlabel``, ``ylabel``, ``annotate``, ``vmin``, ...).

    Returns:
        The Figure; its heatmap Axes are ``fig.axes[:len(matrices)]``.
    """
    if isinstance(matrices, (torch.Tensor, np.ndarray)):
        stacked = _to_numpy(matrices)
        if stacked.ndim != 3:
            raise ValueError(f"a tensor of heatmaps must be 3-D (n, rows, cols), got shape {tuple(stacked.shape)}")
        data = list(stacked)
    else:
        data = [_to_matrix(m, name=f"matrices[{i}]") for i, m in enumerate(matrices)]
    n = len(data)
    if n == 0:
        raise ValueError("plot_heatmaps needs at least one matrix")
    if titles is not None and len(titles) != n:
        raise ValueError(f"{n} matrices but {len(titles)} titles")
    ncols = min(n, 4) if ncols is None else ncols
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    nrows = math.ceil(n / ncols)
    if figsize is None:
        figsize = (3.4 * ncols + (0.8 if share_scale else 0.0), 3.2 * nrows + (0.4 if suptitle else 0.0))
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False, layout="constrained")
    flat_axes = list(axes.flat)

    colorbar = kwargs.pop("colorbar", True)
    if share_scale:
        finite = [m[np.isfinite(m)] for m in data]
        kwargs.setdefault("vmin", min((float(f.min()) for f in finite if f.size), default=0.0))
        kwargs.setdefault("vmax", max((float(f.max()) for f in finite if f.size), default=1.0))
    for i, (ax, matrix) in enumerate(zip(flat_axes, data)):
        plot_heatmap(
            matrix,
            ax=ax,
            row_labels=row_labels,
            col_labels=col_labels,
            title=None if titles is None else titles[i],
            colorbar=colorbar and not share_scale,
            **kwargs,
        )
    for ax in flat_axes[n:]:
        ax.set_visible(False)
    if colorbar and share_scale:
        fig.colorbar(flat_axes[0].images[-1], ax=flat_axes[:n], shrink=0.9)
    if suptitle is not None:
        fig.suptitle(suptitle)
    return fig


def plot_attention(
    weights,
    source_tokens: Sequence[str],
    target_tokens: Sequence[str],
    ax: Axes | None = None,
    title: str | None = None,
    gold: Iterable[tuple[int, int]] | None = None,
) -> Axes:
    """Attention weights of a translation: one row per target token, one column per source token.

    Args:
        weights: (len(target_tokens), len(source_tokens)) weights, e.g. each row a softmax over the
            source positions. Colours span [0, 1] so plots of different models compare.
        source_tokens: the source sentence, shown along the x axis.
        target_tokens: the target sentence, shown along the y axis.
        ax: the Axes to draw on (a new figure when None).
        title: Axes title.
        gold: optional gold alignment links ``(source index, target index)``, drawn as outlined
            boxes over the heatmap: a good alignment puts dark cells inside the boxes.

    Returns:
        The Axes drawn on.
    """
    data = _to_matrix(weights, name="weights")
    n_target, n_source = len(target_tokens), len(source_tokens)
    if data.shape != (n_target, n_source):
        raise ValueError(
            f"weights have shape {tuple(data.shape)} but there are {n_target} target tokens (rows) "
            f"and {n_source} source tokens (columns)"
        )
    links = sorted({(int(s), int(t)) for s, t in gold}) if gold is not None else []
    for s, t in links:
        if not (0 <= s < n_source and 0 <= t < n_target):
            raise ValueError(
                f"gold link {(s, t)} (source index, target index) is outside the "
                f"{n_source} source x {n_target} target tokens"
            )
    ax = plot_heatmap(
        data,
        row_labels=target_tokens,
        col_labels=source_tokens,
        ax=ax,
        title=title,
        xlabel="source",
        ylabel="target",
        cmap="Blues",
        vmin=0.0,
        vmax=1.0,
    )
    for s, t in links:
        ax.add_patch(Rectangle((s - 0.5, t - 0.5), 1, 1, fill=False, edgecolor="tab:orange", linewidth=2))
    return ax


def plot_kernel_regression(
    x_train,
    y_train,
    x_test,
    y_true,
    predictions: Mapping[str, object],
    ax: Axes | None = None,
) -> Axes:
    """Training points, the true function and one or more fitted curves (chapter 1).

    Args:
        x_train, y_train: (n_train,) training pairs, drawn as dots.
        x_test, y_true: (n_test,) evaluation inputs and the true function there, drawn dashed.
        predictions: model name -> (n_test,) predictions at ``x_test``, one line each.
        ax: the Axes to draw on (a new figure when None).

    Returns:
        The Axes drawn on.
    """
    xs, ys = _to_numpy(x_train).ravel(), _to_numpy(y_train).ravel()
    xt, yt = _to_numpy(x_test).ravel(), _to_numpy(y_true).ravel()
    if xs.shape != ys.shape:
        raise ValueError(f"x_train has {xs.size} points but y_train has {ys.size}")
    if xt.shape != yt.shape:
        raise ValueError(f"x_test has {xt.size} points but y_true has {yt.size}")
    curves = {name: _to_numpy(prediction).ravel() for name, prediction in predictions.items()}
    for name, yp in curves.items():
        if yp.shape != xt.shape:
            raise ValueError(f"prediction {name!r} has {yp.size} points but x_test has {xt.size}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    ax.scatter(xs, ys, s=14, color="0.55", alpha=0.7, label="training data", zorder=1)
    ax.plot(xt, yt, "k--", linewidth=1.5, label="true function", zorder=3)
    for name, yp in curves.items():
        ax.plot(xt, yp, linewidth=1.8, label=name, zorder=2)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend(loc="best")
    return ax


use_course_style()
