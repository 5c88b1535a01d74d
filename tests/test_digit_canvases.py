"""solutions.data.digits: scikit-learn's digits on canvases — determinism, placement, splits, distortions."""
import pytest
import torch
import torch.nn.functional as F

from solutions.data.digits import DISTORTIONS, digit_split, load_digit_images, make_digit_canvases


def test_the_bundled_digits():
    images, labels = load_digit_images()
    assert images.shape == (1797, 1, 8, 8) and labels.shape == (1797,)
    assert images.min() == 0 and images.max() == 1 and set(labels.tolist()) == set(range(10))


def test_the_split_is_disjoint_and_covers_every_digit():
    train, test = digit_split(test=400, seed=0)
    assert len(train) == 1397 and len(test) == 400
    assert not set(train.tolist()) & set(test.tolist()) and len(set(train.tolist()) | set(test.tolist())) == 1797
    assert torch.equal(digit_split(400, seed=0)[1], test) and not torch.equal(digit_split(400, seed=1)[1], test)
    with pytest.raises(ValueError):
        digit_split(test=0)


@pytest.mark.parametrize("distortion", DISTORTIONS)
def test_canvases_are_deterministic_and_in_range(distortion):
    idx = torch.arange(20)
    a = make_digit_canvases(idx, distortion, canvas=24, clutter=2, repeats=2, seed=5)
    b = make_digit_canvases(idx, distortion, canvas=24, clutter=2, repeats=2, seed=5)
    c = make_digit_canvases(idx, distortion, canvas=24, clutter=2, repeats=2, seed=6)
    assert a.images.shape == (40, 1, 24, 24) and a.labels.shape == (40,)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert a.images.min() >= 0 and a.images.max() <= 1
    assert torch.equal(a.sources, idx.repeat_interleave(2)) and torch.equal(a.labels, load_digit_images()[1][a.sources])
    assert (a.images.flatten(1).sum(-1) > 2).all(), "every canvas shows its digit"


def test_an_upright_digit_is_the_source_digit_resampled():
    """'T' with a digit as wide as the canvas: the canvas is the 8×8 digit, bilinearly upsampled ×2."""
    images, _ = load_digit_images()
    drawn = make_digit_canvases(torch.tensor([3]), "T", canvas=16, digit_size=16, dtype=torch.float64)
    upsampled = F.interpolate(images[3:4], scale_factor=2, mode="bilinear", align_corners=False)
    # equal inside; at the border grid_sample reads zeros beyond the digit, interpolate repeats its edge
    torch.testing.assert_close(drawn.images[0, 0, 1:-1, 1:-1], upsampled[0, 0, 1:-1, 1:-1])


def test_translated_digits_land_where_the_centres_say():
    canvases = make_digit_canvases(torch.arange(50), "T", canvas=32, digit_size=10, seed=1, dtype=torch.float64)
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    mass = canvases.images[:, 0]
    centroid = torch.stack([(mass * (xs + 0.5)).sum((1, 2)), (mass * (ys + 0.5)).sum((1, 2))], -1) / mass.sum((1, 2))[:, None]
    assert (centroid - canvases.centres).abs().max() < 2.5, "the ink's centroid lies within 2.5 px of the digit's centre"
    assert canvases.centres.std(0).min() > 3, "the digits are spread over the canvas"


def test_clutter_adds_ink_away_from_the_digit():
    clean = make_digit_canvases(torch.arange(30), "T", canvas=28, seed=2)
    cluttered = make_digit_canvases(torch.arange(30), "T", canvas=28, clutter=4, seed=2)
    assert torch.equal(clean.centres, cluttered.centres)
    assert (cluttered.images >= clean.images - 1e-6).all() and cluttered.images.sum() > 1.2 * clean.images.sum()


def test_device_dtype_and_bad_arguments():
    d = make_digit_canvases(torch.arange(3), "R", dtype=torch.float64)
    assert d.images.dtype == torch.float64 and d.labels.dtype == torch.int64
    with pytest.raises(ValueError, match="distortion"):
        make_digit_canvases(torch.arange(3), "X")
    with pytest.raises(ValueError, match="digit_size"):
        make_digit_canvases(torch.arange(3), canvas=8, digit_size=12)
