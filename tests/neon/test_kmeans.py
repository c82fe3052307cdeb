import math

import numpy as np
import pytest
import torch
from sklearn.cluster import BisectingKMeans, KMeans, MiniBatchKMeans
from sklearn.exceptions import NotFittedError

from relprop.neon import NEON, NeuralizedKMeans, neuralize_kmeans

CENTROIDS_3 = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0]], dtype=torch.float64)
X_GOLDEN = torch.tensor([[0.5, 1.0]], dtype=torch.float64)


def brute_force_logits(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    distances = torch.cdist(x, centroids) ** 2
    n_clusters = centroids.shape[0]
    return torch.stack(
        [
            torch.stack([distances[:, k] - distances[:, c] for k in range(n_clusters) if k != c]).amin(0)
            for c in range(n_clusters)
        ],
        dim=1,
    )


@pytest.fixture
def random_model():
    generator = torch.Generator().manual_seed(0)
    centroids = torch.randn(5, 7, generator=generator, dtype=torch.float64)
    x = torch.randn(40, 7, generator=generator, dtype=torch.float64)
    return NeuralizedKMeans(centroids), centroids, x


def test_linear_layer_matches_spec_for_two_clusters():
    model = NeuralizedKMeans(CENTROIDS_3[:2])
    assert model.weight[0, 0].tolist() == [-4.0, 0.0]
    assert model.bias[0, 0].item() == 4.0
    assert model.midpoint[0, 0].tolist() == [1.0, 0.0]
    assert model(X_GOLDEN)[0, 0].item() == pytest.approx(2.0)
    torch.testing.assert_close(NEON(model)(X_GOLDEN), torch.tensor([[2.0, 0.0]], dtype=torch.float64))


@pytest.mark.parametrize(
    ("beta", "expected"),
    [(1.0, (1.462117, 0.537883)), (0.5, (1.244919, 0.755081)), (10.0, (1.999909, 9.0796e-5))],
)
def test_golden_relevance_three_clusters(beta, expected):
    model = NeuralizedKMeans(CENTROIDS_3)
    assert model(X_GOLDEN)[0].tolist() == pytest.approx([2.0, -2.0, -3.0])
    relevance = NEON(model, beta=beta)(X_GOLDEN)
    assert relevance[0].tolist() == pytest.approx(expected, rel=1e-5, abs=1e-9)


def test_logits_equal_brute_force(random_model):
    model, centroids, x = random_model
    torch.testing.assert_close(model(x), brute_force_logits(x, centroids), rtol=0, atol=1e-12)


def test_sign_property(random_model):
    model, centroids, x = random_model
    logits = model(x)
    nearest = torch.cdist(x, centroids).argmin(1)
    positive = logits > 0
    assert (positive.sum(1) == 1).all()
    assert (positive.float().argmax(1) == nearest).all()
    assert (model.assign(x) == nearest).all()


@pytest.mark.parametrize("beta", [0.0, 0.1, 1.0, 7.0, math.inf])
def test_conservation_for_every_cluster_and_beta(random_model, beta):
    model, _, x = random_model
    logits = model(x)
    explainer = NEON(model, beta=beta)
    for cluster in range(5):
        relevance = explainer(x, cluster)
        torch.testing.assert_close(relevance.sum(1), logits[:, cluster], rtol=0, atol=1e-7)


def test_default_target_explains_the_assigned_cluster_with_positive_total(random_model):
    model, _, x = random_model
    relevance = NEON(model)(x)
    torch.testing.assert_close(relevance, NEON(model)(x, model.assign(x)))
    assert (relevance.sum(1) > 0).all()


def test_large_beta_tends_to_nearest_competitor_taylor_terms(random_model):
    model, centroids, x = random_model
    cluster = 2
    h = model.competitor_units(x)[:, cluster]
    nearest = h.argmin(1)
    others = torch.tensor([k for k in range(5) if k != cluster])[nearest]
    expected = (
        2 * (centroids[cluster] - centroids[others]) * (x - (centroids[cluster] + centroids[others]) / 2)
    )
    torch.testing.assert_close(NEON(model, beta=math.inf)(x, cluster), expected)
    # For any margin between the two smallest units, a large finite beta gets close to the limit.
    gaps = h.sort(1).values[:, 1] - h.sort(1).values[:, 0]
    stiff = NEON(model, beta=60.0 / gaps.min().item())(x, cluster)
    torch.testing.assert_close(stiff, expected, rtol=0, atol=1e-10)


def test_translation_invariance(random_model):
    model, centroids, x = random_model
    shift = torch.linspace(-3, 5, 7, dtype=torch.float64)
    shifted = NeuralizedKMeans(centroids + shift)
    for beta in (0.3, 3.0):
        torch.testing.assert_close(
            NEON(shifted, beta=beta)(x + shift), NEON(model, beta=beta)(x), atol=1e-10, rtol=0
        )


def test_float_target_weights_combine_linearly(random_model):
    model, _, x = random_model
    weights = torch.zeros(40, 5, dtype=torch.float64)
    weights[:, 1], weights[:, 3] = 2.0, -0.5
    expected = 2.0 * NEON(model)(x, 1) - 0.5 * NEON(model)(x, 3)
    torch.testing.assert_close(NEON(model)(x, weights), expected)


@pytest.mark.parametrize("estimator_class", [KMeans, MiniBatchKMeans])
def test_sklearn_predict_and_image_input(estimator_class):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(120, 2 * 3 * 3))
    estimator = estimator_class(n_clusters=4, n_init=3, random_state=0).fit(data)
    model = neuralize_kmeans(estimator)
    images = torch.from_numpy(data).reshape(120, 2, 3, 3)
    assert (model(images).argmax(1).numpy() == estimator.predict(data)).all()
    relevance = NEON(model, beta=0.5)(images)
    assert relevance.shape == images.shape and relevance.dtype == images.dtype
    torch.testing.assert_close(relevance.sum((1, 2, 3)), model(images).amax(1))


def test_float32_input_keeps_dtype():
    model = NeuralizedKMeans(CENTROIDS_3)
    relevance = NEON(model)(X_GOLDEN.float())
    assert relevance.dtype == torch.float32
    assert relevance[0].tolist() == pytest.approx([1.462117, 0.537883], rel=1e-5)


def test_bad_estimators_and_centroids():
    with pytest.raises(NotFittedError, match="KMeans"):
        neuralize_kmeans(KMeans(n_clusters=3))
    fitted = BisectingKMeans(n_clusters=2, random_state=0).fit(np.random.default_rng(0).normal(size=(20, 2)))
    with pytest.raises(TypeError, match="BisectingKMeans"):
        neuralize_kmeans(fitted)
    with pytest.raises(ValueError, match="at least 2 centroids"):
        NeuralizedKMeans(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="NaN"):
        NeuralizedKMeans(torch.tensor([[0.0, float("nan")], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="beta"):
        NEON(NeuralizedKMeans(CENTROIDS_3), beta=-1.0)(X_GOLDEN)
