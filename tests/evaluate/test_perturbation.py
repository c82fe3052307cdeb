import pytest
import torch
from torch import nn

from relprop.evaluate import Constant, GaussianBlur, UniformNoise, insertion, region_perturbation
from relprop.evaluate._common import image_generators

from .conftest import tiny_cnn


def linear_model(weight: list[float], bias: float = 0.0) -> nn.Module:
    """f(x) = w . flatten(x) + b, one output."""
    linear = nn.Linear(len(weight), 1).double()
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([weight]))
        linear.bias.fill_(bias)
    return nn.Sequential(nn.Flatten(), linear).eval()


# f(x) = w . x on a 2x2 image: contributions w * x = [[0.5, -2], [6, 1]], f(x) = 5.5.
W = [0.5, -1.0, 2.0, 0.25]
X = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], dtype=torch.float64)


def hand_case(**kwargs):
    model = linear_model(W)
    attribution = torch.tensor(W, dtype=torch.float64).view(1, 1, 2, 2) * X
    return region_perturbation(model, X, attribution, 0, patch_size=1, steps=None, perturbation=0.0, **kwargs)


def test_morf_curve_of_a_linear_model_by_hand():
    result = hand_case(order="morf")
    # Removed contributions in order 6, 1, 0.5, -2.
    torch.testing.assert_close(result.curve, torch.tensor([[0.0, 6.0, 7.0, 7.5, 5.5]], dtype=torch.float64))
    torch.testing.assert_close(
        result.scores, torch.tensor([[5.5, -0.5, -1.5, -2.0, 0.0]], dtype=torch.float64)
    )
    torch.testing.assert_close(result.aopc, torch.tensor([26.0 / 5], dtype=torch.float64))
    # Deletion AUC: trapezoid with dx = 1/4.
    torch.testing.assert_close(
        result.auc, torch.tensor([0.25 * (5.5 / 2 - 0.5 - 1.5 - 2.0 + 0.0 / 2)]).double()
    )


def test_lerf_curve_is_the_mirror():
    result = hand_case(order="lerf")
    # Removed contributions in order -2, 0.5, 1, 6.
    torch.testing.assert_close(
        result.curve, torch.tensor([[0.0, -2.0, -1.5, -0.5, 5.5]], dtype=torch.float64)
    )
    torch.testing.assert_close(result.aopc, torch.tensor([1.5 / 5], dtype=torch.float64))


def test_insertion_curve_of_a_linear_model_by_hand():
    model = linear_model(W)
    attribution = torch.tensor(W, dtype=torch.float64).view(1, 1, 2, 2) * X
    result = insertion(model, X, attribution, 0, patch_size=1, perturbation=0.0)
    torch.testing.assert_close(result.scores, torch.tensor([[0.0, 6.0, 7.0, 7.5, 5.5]], dtype=torch.float64))
    torch.testing.assert_close(result.reference, torch.tensor([5.5], dtype=torch.float64))
    torch.testing.assert_close(result.auc, torch.tensor([0.25 * (0.0 + 6.0 + 7.0 + 7.5 + 5.5 / 2)]).double())


def test_grid_regions_sum_the_attribution_over_cells_and_channels():
    # 2 channels, 3x3 image, 2x2 grid: cells are cut at the border (sizes 2x2, 2x1, 1x2, 1x1).
    weight = torch.arange(1.0, 19.0, dtype=torch.float64)
    model = linear_model(weight.tolist())
    x = torch.ones(1, 2, 3, 3, dtype=torch.float64)
    attribution = torch.zeros_like(x)
    attribution[0, 0, 2, 2] = 5.0  # bottom-right 1x1 cell
    attribution[0, 1, 0, 2] = 3.0  # top-right 2x1 cell
    attribution[0, 0, 0, 0], attribution[0, 1, 1, 1] = 1.0, 0.5  # top-left cell, 1.5 over both channels
    result = region_perturbation(model, x, attribution, 0, patch_size=2, steps=3, perturbation=0.0)
    w = weight.view(2, 3, 3)
    removed = [w[:, 2, 2].sum(), w[:, 0:2, 2].sum(), w[:, 0:2, 0:2].sum()]
    expected = torch.stack([torch.tensor(0.0).double(), *torch.cumsum(torch.stack(removed), 0)])
    torch.testing.assert_close(result.curve[0], expected)


def test_morf_with_the_exact_contributions_is_the_best_order():
    # For f = w.x and a zero replacement, removing the largest w*x first maximizes every point of the curve.
    generator = torch.Generator().manual_seed(3)
    weight = torch.randn(16, generator=generator, dtype=torch.float64)
    model = linear_model(weight.tolist(), bias=0.3)
    x = torch.randn(4, 1, 4, 4, generator=generator, dtype=torch.float64)
    exact = weight.view(1, 1, 4, 4) * x
    morf = region_perturbation(model, x, exact, 0, patch_size=1, steps=None, perturbation=0.0)
    for seed in range(5):
        shuffled = region_perturbation(
            model, x, exact, 0, patch_size=1, steps=None, perturbation=0.0, order="random", seed=seed
        )
        assert (morf.curve >= shuffled.curve - 1e-12).all()
        assert (morf.aopc > shuffled.aopc).all()
    lerf = region_perturbation(model, x, exact, 0, patch_size=1, steps=None, perturbation=0.0, order="lerf")
    assert (lerf.curve <= morf.curve + 1e-12).all()
    # Removing everything leaves only the bias, whatever the order.
    torch.testing.assert_close(lerf.scores[:, -1], torch.full((4,), 0.3, dtype=torch.float64))


def reference_curve(model, x, attribution, target, patch, steps, order, replacement, windows):
    """Sequential region perturbation as in the paper: one region, one model call at a time."""
    heat = attribution.sum(1)
    height, width = x.shape[2:]
    if windows == "grid":
        corners = [(i, j) for i in range(0, height, patch) for j in range(0, width, patch)]
        regions = [(i, min(i + patch, height), j, min(j + patch, width)) for i, j in corners]
    else:
        before, after = (patch - 1) // 2, patch // 2
        regions = [
            (max(i - before, 0), min(i + after + 1, height), max(j - before, 0), min(j + after + 1, width))
            for i in range(height)
            for j in range(width)
        ]
    curves = []
    for b in range(x.shape[0]):
        sums = [heat[b, r0:r1, c0:c1].sum().item() for r0, r1, c0, c1 in regions]
        sign = -1.0 if order == "morf" else 1.0
        sequence = sorted(range(len(regions)), key=lambda index: sign * sums[index])
        perturbed = x[b : b + 1].clone()
        scores = [model(perturbed)[0, target[b]]]
        for index in sequence[:steps]:
            r0, r1, c0, c1 = regions[index]
            perturbed[..., r0:r1, c0:c1] = replacement[b : b + 1, :, r0:r1, c0:c1]
            scores.append(model(perturbed)[0, target[b]])
        curves.append(torch.stack(scores))
    return torch.stack(curves).detach()


@pytest.mark.parametrize(
    ("size", "patch", "windows", "order"),
    [
        (16, 4, "grid", "morf"),
        (15, 4, "grid", "lerf"),
        (12, 3, "sliding", "morf"),
        (12, 4, "sliding", "lerf"),
    ],
)
def test_batched_curve_equals_the_sequential_definition(size, patch, windows, order):
    model = tiny_cnn(channels=2, size=size)
    generator = torch.Generator().manual_seed(4)
    x = torch.rand(2, 2, size, size, generator=generator, dtype=torch.float64)
    attribution = torch.randn(x.shape, generator=generator, dtype=torch.float64)
    streams = image_generators(7, x, "replacement")  # each image's own noise
    noise = torch.cat([UniformNoise()(x[k : k + 1], g) for k, g in enumerate(streams)])
    result = region_perturbation(
        model, x, attribution, None, patch_size=patch, steps=12, order=order, windows=windows, seed=7
    )
    predicted = model(x).argmax(1)
    expected = reference_curve(model, x, attribution, predicted, patch, 12, order, noise, windows)
    torch.testing.assert_close(result.scores, expected)


def test_sliding_windows_overlap():
    # One spike: the 3x3 windows around it all score 1; the first (row-major) is centred up-left of it.
    model = linear_model([1.0] * 25)
    x = torch.ones(1, 1, 5, 5, dtype=torch.float64)
    attribution = torch.zeros_like(x)
    attribution[0, 0, 2, 2] = 1.0
    result = region_perturbation(
        model, x, attribution, 0, patch_size=3, steps=2, windows="sliding", perturbation=0.0
    )
    # Step 1 removes rows/cols 0..2 (9 pixels); step 2 the window centred at (1, 2): 3 new pixels.
    torch.testing.assert_close(result.curve[0], torch.tensor([0.0, 9.0, 12.0], dtype=torch.float64))


def test_channel_free_attribution_and_insertion_deletion_symmetry():
    model = tiny_cnn(channels=2, size=12)
    generator = torch.Generator().manual_seed(5)
    x = torch.rand(1, 2, 12, 12, generator=generator, dtype=torch.float64)
    canvas = torch.rand(1, 2, 12, 12, generator=generator, dtype=torch.float64)
    attribution = torch.randn(1, 2, 12, 12, generator=generator, dtype=torch.float64)
    kwargs = dict(patch_size=3, windows="sliding", steps=None)
    inserted = insertion(model, x, attribution, 0, perturbation=canvas[0], **kwargs)
    # A (B, H, W) heatmap is the channel sum of the attribution.
    same = insertion(model, x, attribution.sum(1), 0, perturbation=canvas[0], **kwargs)
    torch.testing.assert_close(same.scores, inserted.scores, rtol=0, atol=0)
    # Inserting x into the canvas is deleting from the canvas with x as the replacement.
    deleted = region_perturbation(model, canvas, attribution, 0, perturbation=x[0], **kwargs)
    torch.testing.assert_close(inserted.scores, deleted.scores)
    torch.testing.assert_close(inserted.scores[:, -1], inserted.reference)
    assert inserted.scores.shape == (1, 145)


def test_target_semantics(cnn, images):
    attribution = torch.randn(images.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    kwargs = dict(patch_size=4, steps=6, perturbation=0.0)
    predicted = cnn(images).argmax(1)
    by_none = region_perturbation(cnn, images, attribution, None, **kwargs)
    by_index = region_perturbation(cnn, images, attribution, predicted, **kwargs)
    torch.testing.assert_close(by_none.scores, by_index.scores)
    # A float target weights the outputs; the curve is linear in the weighting.
    weights = torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64).expand(3, 3)
    weighted = region_perturbation(cnn, images, attribution, weights, **kwargs)
    parts = [region_perturbation(cnn, images, attribution, k, **kwargs).scores for k in range(3)]
    torch.testing.assert_close(weighted.scores, parts[0] - 2.0 * parts[1] + 0.5 * parts[2])


def test_batch_size_and_batch_composition_do_not_change_the_result(cnn, images):
    attribution = torch.randn(images.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    kwargs = dict(patch_size=2, steps=20, perturbation=GaussianBlur(1.5))
    full = region_perturbation(cnn, images, attribution, 1, batch_size=1000, **kwargs)
    for batch_size in (1, 7):
        chunked = region_perturbation(cnn, images, attribution, 1, batch_size=batch_size, **kwargs)
        torch.testing.assert_close(chunked.scores, full.scores)
    alone = region_perturbation(cnn, images[1:2], attribution[1:2], 1, **kwargs)
    torch.testing.assert_close(alone.scores[0], full.scores[1])


def test_seed_reproducibility(cnn, images):
    attribution = torch.randn(images.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    first = region_perturbation(cnn, images, attribution, patch_size=4, steps=5, seed=11)
    again = region_perturbation(cnn, images, attribution, patch_size=4, steps=5, seed=11)
    other = region_perturbation(cnn, images, attribution, patch_size=4, steps=5, seed=12)
    torch.testing.assert_close(first.scores, again.scores, rtol=0, atol=0)
    assert not torch.allclose(first.scores, other.scores)
    drawn = [
        region_perturbation(
            cnn, images, attribution, patch_size=4, steps=5, seed=torch.Generator().manual_seed(11)
        ).scores
        for _ in range(2)
    ]
    torch.testing.assert_close(drawn[0], drawn[1], rtol=0, atol=0)


@pytest.mark.parametrize("order", ["morf", "random"])
def test_an_images_curve_depends_only_on_the_seed_the_image_and_its_attribution(cnn, images, order):
    """With uniform noise and a random order: the same curve for image 1 alone, in the batch, in the batch
    reversed, and after other curves were computed; the noise of image 1 was once the second slice of the
    batch's stream, so it changed with the images before it."""
    attribution = torch.randn(images.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    kwargs = dict(patch_size=4, steps=8, order=order, seed=3)
    full = region_perturbation(cnn, images, attribution, 1, **kwargs).scores
    alone = region_perturbation(cnn, images[1:2], attribution[1:2], 1, **kwargs).scores
    reversed_ = region_perturbation(cnn, images.flip(0), attribution.flip(0), 1, **kwargs).scores
    torch.testing.assert_close(alone[0], full[1])  # to rounding: the model runs on other batches
    torch.testing.assert_close(reversed_.flip(0), full)
    assert not torch.equal(full[0], full[1])  # and the images do not share one stream's values


def test_the_random_order_sees_the_replacement_of_every_other_order(cnn, images):
    # once every region is removed the image is its replacement, whatever the order
    attribution = torch.randn(images.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    final = {
        order: region_perturbation(cnn, images, attribution, 1, patch_size=4, steps=None, order=order).scores
        for order in ("morf", "lerf", "random")
    }
    torch.testing.assert_close(final["random"][:, -1], final["morf"][:, -1], rtol=0, atol=0)
    torch.testing.assert_close(final["lerf"][:, -1], final["morf"][:, -1], rtol=0, atol=0)


def test_dataset_mean_replacement(cnn, images):
    attribution = torch.randn(images.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mean = torch.tensor([0.25], dtype=torch.float64).view(1, 1, 1)
    by_tensor = region_perturbation(cnn, images, attribution, 0, patch_size=4, steps=None, perturbation=mean)
    by_float = region_perturbation(
        cnn, images, attribution, 0, patch_size=4, steps=None, perturbation=Constant(0.25)
    )
    torch.testing.assert_close(by_tensor.scores, by_float.scores)
    # All 16 regions removed: the image is the mean everywhere.
    torch.testing.assert_close(by_tensor.scores[:, -1], cnn(torch.full_like(images, 0.25))[:, 0].detach())


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (dict(attribution=torch.zeros(3, 2, 16, 16)), ValueError, "shaped like x"),
        (dict(attribution=torch.full((3, 1, 16, 16), float("nan"))), ValueError, "NaN"),
        (dict(x=torch.rand(16, 16)), ValueError, r"\(B, C, H, W\)"),
        (dict(patch_size=17), ValueError, "exceeds the image size"),
        (dict(patch_size=0), ValueError, "patch_size"),
        (dict(steps=17), ValueError, "exceeds the 16 regions"),
        (dict(order="best"), ValueError, "unknown order"),
        (dict(windows="random"), ValueError, "unknown windows"),
        (dict(perturbation="mean"), ValueError, "unknown perturbation"),
        (dict(perturbation=[0.0]), TypeError, "perturbation"),
        (dict(target=3), ValueError, "out of range"),
        (dict(target=torch.tensor([0, 1])), ValueError, r"must have shape \(3,\)"),
        (dict(target=torch.zeros(3, 2, dtype=torch.float64)), ValueError, "shaped like the model's output"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(seed=1.5), TypeError, "seed"),
    ],
)
def test_bad_input_is_rejected(cnn, images, change, error, message):
    arguments = dict(x=images, attribution=torch.ones_like(images), target=None, patch_size=4, steps=16)
    arguments.update(change)
    x, attribution, target = arguments.pop("x"), arguments.pop("attribution"), arguments.pop("target")
    with pytest.raises(error, match=message):
        region_perturbation(cnn, x, attribution, target, **arguments)


def test_targets_mean_what_they_mean_for_lrp(cnn, images):
    """One target convention: a 0-d or an int32 tensor selects a class here as it does for relprop.LRP."""
    attribution = torch.rand_like(images)
    expected = region_perturbation(cnn, images, attribution, 1, patch_size=4, steps=None).scores
    for target in (torch.tensor(1), torch.tensor([1, 1, 1], dtype=torch.int32)):
        torch.testing.assert_close(
            region_perturbation(cnn, images, attribution, target, patch_size=4, steps=None).scores, expected
        )
