"""The shared plots: they draw what they are given, label it, and refuse mismatched input."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from solutions import viz  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_heatmap_draws_the_matrix_with_labels(device):
    weights = torch.softmax(torch.randn(3, 4, device=device, requires_grad=True), dim=-1)
    ax = viz.plot_heatmap(weights, row_labels=["a", "b", "c"], col_labels=list("wxyz"), annotate=True)
    np.testing.assert_allclose(ax.images[-1].get_array(), weights.detach().cpu().numpy(), rtol=1e-6)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert len(ax.texts) == 12, "one annotation per cell"


def test_heatmap_rejects_wrong_labels_and_shapes():
    with pytest.raises(ValueError, match="3 rows but 2 row labels"):
        viz.plot_heatmap(np.zeros((3, 4)), row_labels=["a", "b"])
    with pytest.raises(ValueError, match="2-D"):
        viz.plot_heatmap(np.zeros((2, 3, 4)))


def test_heatmaps_share_one_colour_scale():
    fig = viz.plot_heatmaps(torch.stack([torch.zeros(2, 2), torch.full((2, 2), 3.0)]), titles=["a", "b"])
    images = [ax.images[-1] for ax in fig.axes[:2]]
    assert all(im.get_clim() == (0.0, 3.0) for im in images)
    with pytest.raises(ValueError, match="2 matrices but 1 titles"):
        viz.plot_heatmaps([np.eye(2), np.eye(2)], titles=["only one"])


def test_attention_plot_boxes_gold_links_and_checks_them():
    ax = viz.plot_attention(torch.eye(4), ["I", "love", "machine", "learning"], ["我", "爱", "机器", "学习"],
                            gold=[(0, 0), (1, 1), (2, 2), (3, 3)])
    boxes = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert sorted(b.get_xy() for b in boxes) == [(-0.5, -0.5), (0.5, 0.5), (1.5, 1.5), (2.5, 2.5)]
    assert ax.images[-1].get_clim() == (0.0, 1.0)
    with pytest.raises(ValueError, match="4 target tokens"):
        viz.plot_attention(torch.eye(3), ["a", "b", "c"], ["w", "x", "y", "z"])
    with pytest.raises(ValueError, match="outside"):
        viz.plot_attention(torch.eye(2), ["a", "b"], ["x", "y"], gold=[(2, 0)])


def test_chinese_labels_have_a_font():
    viz.use_course_style()
    font = font_manager.findfont(font_manager.FontProperties(family=viz.CJK_FONT), fallback_to_default=False)
    assert "NotoSansCJK" in font


def test_kernel_regression_plot_checks_lengths():
    x = torch.linspace(0, 5, 10)
    ax = viz.plot_kernel_regression(x, x, x, x, {"model": x})
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"model", "training data", "true function"}
    with pytest.raises(ValueError, match="prediction 'bad'"):
        viz.plot_kernel_regression(x, x, x, x, {"bad": x[:3]})
