import math

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from torch import nn

from relprop import LRP, composites, rules
from relprop.neon import NEON, DeepKMeans, NeuralizedKMeans

LRP0 = composites.Uniform(rules.LRP0())
EXACT = composites.Uniform(rules.Epsilon(redistribute=True))


def brute_force_logits(phi: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """f_c = min_{k != c} d_k - d_c from squared distances, computed without the neuralized head."""
    distances = ((phi[:, None, :] - centroids[None]) ** 2).sum(2)
    differences = distances[:, None, :] - distances[:, :, None]  # [b, c, k] = d_k - d_c
    eye = torch.eye(centroids.shape[0], dtype=torch.bool)
    return differences.masked_fill(eye, math.inf).amin(2)


def feature_net(bias: bool, flatten: bool = True) -> nn.Sequential:
    torch.manual_seed(0)
    layers = [nn.Conv2d(1, 3, 3, padding=1, bias=bias), nn.ReLU(), nn.MaxPool2d(2)]
    if flatten:
        layers += [nn.Flatten(), nn.Linear(3 * 4 * 4, 5, bias=bias)]
    return nn.Sequential(*layers).double().eval()


def setup(bias: bool, flatten: bool = True):
    net = feature_net(bias, flatten)
    x = torch.randn(12, 1, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        phi = net(x).flatten(1)
    centroids = phi[:4] + 0.1 * torch.randn(4, phi.shape[1], generator=torch.Generator().manual_seed(2))
    return net, x, phi, centroids


def test_logits_equal_brute_force_on_the_features():
    net, x, phi, centroids = setup(bias=True)
    explainer = DeepKMeans(net, centroids)
    torch.testing.assert_close(explainer.logits(x), brute_force_logits(phi, centroids), rtol=0, atol=1e-10)
    assert (explainer.assign(x) == torch.cdist(phi, centroids).argmin(1)).all()


@pytest.mark.parametrize("flatten", [True, False])
@pytest.mark.parametrize("beta", [0.0, 0.3, 1.0, 10.0, math.inf])
def test_bias_free_network_with_lrp0_conserves_the_logit(beta, flatten):
    net, x, phi, centroids = setup(bias=False, flatten=flatten)
    explainer = DeepKMeans(net, centroids, composite=LRP0, beta=beta)
    logits = brute_force_logits(phi, centroids)
    for cluster in range(4):
        relevance = explainer(x, cluster)
        assert relevance.shape == x.shape and relevance.dtype == x.dtype
        torch.testing.assert_close(relevance.sum((1, 2, 3)), logits[:, cluster], rtol=0, atol=1e-8)


@pytest.mark.parametrize("beta", [0.5, 4.0])
def test_bias_free_lrp0_is_gradient_times_input_of_the_feature_relevance(beta):
    # On a bias-free ReLU network, LRP-0 of output relevance R is x * J^T (R / phi) (autograd).
    net, x, phi, centroids = setup(bias=False)
    feature_relevance = NEON(NeuralizedKMeans(centroids), beta=beta)(phi, 2)
    leaf = x.clone().requires_grad_()
    (gradient,) = torch.autograd.grad(net(leaf), leaf, feature_relevance / phi)
    expected = x * gradient
    relevance = DeepKMeans(net, centroids, composite=LRP0, beta=beta)(x, 2)
    torch.testing.assert_close(relevance, expected, rtol=0, atol=1e-10)


def test_parameter_free_features_reproduce_neon_on_the_input():
    centroids = torch.randn(3, 12, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x = torch.randn(5, 3, 2, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    for target in (None, 1):
        expected = NEON(NeuralizedKMeans(centroids), beta=0.7)(x, target)
        torch.testing.assert_close(DeepKMeans(nn.Flatten(), centroids, beta=0.7)(x, target), expected)


def hand_example(composite):
    features = nn.Linear(2, 2, bias=False).double()
    with torch.no_grad():
        features.weight.copy_(torch.tensor([[1.0, -1.0], [0.0, 1.0]]))  # phi = (x1 - x2, x2)
    centroids = torch.tensor([[0.0, 2.0], [2.0, 0.0]], dtype=torch.float64)
    return DeepKMeans(features, centroids, composite=composite)


def test_hand_computed_signed_relevance():
    # phi = (-1, 2); d_0 = 1, d_1 = 13, f_0 = 12; w = (-4, 4), m = (1, 1), R_phi = w * (phi - m) = (8, 4).
    x = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    assert hand_example(LRP0).logits(x).tolist() == [[12.0, -12.0]]
    # LRP-0: phi_1 = 1 * 1 + 2 * (-1) = -1 -> (8 * 1 / -1, 8 * -2 / -1) = (-8, 16); phi_2 -> (0, 4).
    assert hand_example(LRP0)(x).tolist() == [[-8.0, 20.0]]
    assert hand_example(None)(x)[0].tolist() == pytest.approx([-8.0, 20.0], rel=1e-5)
    # z+ credits x_1, which raises phi_1, for phi_1 being low (documented failure on signed relevance).
    z_plus = hand_example(composites.Uniform(rules.ZPlus()))(x)
    assert z_plus[0].tolist() == pytest.approx([8.0, 4.0], rel=1e-5)
    # Cluster 1: all signs flip (f_1 = -f_0 with two clusters).
    assert hand_example(LRP0)(x, 1).tolist() == [[8.0, -20.0]]


def test_biases_conserve_exactly_with_redistribution():
    net, x, phi, centroids = setup(bias=True)
    logits = brute_force_logits(phi, centroids)
    explainer = DeepKMeans(net, centroids, composite=EXACT, beta=0.5)
    for cluster in range(4):
        relevance = explainer(x, cluster)
        torch.testing.assert_close(relevance.sum((1, 2, 3)), logits[:, cluster], rtol=0, atol=1e-8)


def test_biases_absorb_what_the_audit_books():
    # LRP.audit takes a target, not an output relevance: weighting phi by R_phi / phi reproduces R_phi.
    net, x, phi, centroids = setup(bias=True)
    beta, cluster = 0.5, 1
    explainer = DeepKMeans(net, centroids, beta=beta)
    relevance = explainer(x, cluster)
    feature_relevance = NEON(NeuralizedKMeans(centroids), beta=beta)(phi, cluster)
    books = LRP(net, explainer.composite).audit(x, target=feature_relevance / phi)
    logit = brute_force_logits(phi, centroids)[:, cluster]
    torch.testing.assert_close(books.output, logit, rtol=0, atol=1e-10)
    torch.testing.assert_close(books.relevance, relevance, rtol=0, atol=1e-10)
    torch.testing.assert_close(relevance.sum((1, 2, 3)), logit - books.absorbed, rtol=0, atol=1e-10)
    assert books.absorbed.abs().max() > 1e-3  # the biases do absorb: the check above is not vacuous


def test_target_forms_and_linearity():
    net, x, _, centroids = setup(bias=True)
    explainer = DeepKMeans(net, centroids, beta=0.5)
    assigned = explainer.assign(x)
    torch.testing.assert_close(explainer(x), explainer(x, assigned))
    torch.testing.assert_close(explainer(x, torch.full((12,), 3)), explainer(x, 3))
    weights = torch.zeros(12, 4, dtype=torch.float64)
    weights[:, 1], weights[:, 3] = 2.0, -0.5
    torch.testing.assert_close(explainer(x, weights), 2.0 * explainer(x, 1) - 0.5 * explainer(x, 3))


def test_accepts_fitted_kmeans_and_neuralized_head():
    net, x, phi, _ = setup(bias=True)
    kmeans = KMeans(n_clusters=3, n_init=2, random_state=0).fit(phi.numpy())
    from_estimator = DeepKMeans(net, kmeans, beta=0.5)
    assert (from_estimator.assign(x).numpy() == kmeans.predict(phi.numpy())).all()
    from_head = DeepKMeans(net, NeuralizedKMeans(kmeans.cluster_centers_), beta=0.5)
    torch.testing.assert_close(from_estimator(x), from_head(x))


def test_float32_keeps_dtype():
    net, x, phi, centroids = setup(bias=False)
    net = net.float()
    relevance = DeepKMeans(net, centroids, composite=LRP0)(x.float(), 0)
    assert relevance.dtype == torch.float32
    expected = brute_force_logits(phi, centroids)[:, 0].float()
    torch.testing.assert_close(relevance.sum((1, 2, 3)), expected, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def digits_model():
    """A small network trained for a moment on digits; k-means with 10 clusters on its 8 features."""
    digits = load_digits()
    images = torch.from_numpy(digits.data / 16.0).reshape(-1, 1, 8, 8)
    labels = torch.from_numpy(digits.target)
    torch.manual_seed(0)
    features = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 8)).double()
    classifier = nn.Sequential(features, nn.ReLU(), nn.Linear(8, 10)).double()
    optimizer = torch.optim.Adam(classifier.parameters(), lr=0.02)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threads only add overhead on a shared machine
    try:
        for _ in range(80):
            optimizer.zero_grad()
            nn.functional.cross_entropy(classifier(images), labels).backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    features.eval()
    with torch.no_grad():
        phi = features(images).numpy()
    kmeans = KMeans(n_clusters=10, n_init=3, random_state=0).fit(phi)
    return features, kmeans, images, phi


def test_digits_sign_property_and_conservation(digits_model):
    features, kmeans, images, phi = digits_model
    explainer = DeepKMeans(features, kmeans, composite=EXACT, beta=0.1)
    assigned = explainer.assign(images)
    assert (assigned.numpy() == kmeans.predict(phi)).all()
    logits = explainer.logits(images)
    assert ((logits > 0) == nn.functional.one_hot(assigned, 10).bool()).all()

    sample = images[::60]
    totals = torch.stack([explainer(sample, cluster).sum((1, 2, 3)) for cluster in range(10)], dim=1)
    torch.testing.assert_close(totals, logits[::60], rtol=0, atol=1e-8)
    assert ((totals > 0) == nn.functional.one_hot(assigned[::60], 10).bool()).all()


def test_digits_negative_feature_relevance_reaches_the_input(digits_model):
    features, kmeans, images, phi = digits_model
    sample = images[::60]
    feature_relevance = NEON(NeuralizedKMeans(kmeans.cluster_centers_), beta=0.1)(torch.from_numpy(phi[::60]))
    against = feature_relevance.clamp(max=0)  # evidence for other clusters
    assert (against.sum(1) < -0.01 * feature_relevance.sum(1)).float().mean() > 0.3
    # None of it is clipped on the way: it arrives at the input in full, and signed.
    relevance = LRP(features, EXACT).propagate(sample, against)
    torch.testing.assert_close(relevance.sum((1, 2, 3)), against.sum(1), rtol=0, atol=1e-8)
    # The explanation is the sum of the evidence for and against, each propagated.
    explanation = DeepKMeans(features, kmeans, composite=EXACT, beta=0.1)(sample)
    supporting = LRP(features, EXACT).propagate(sample, feature_relevance.clamp(min=0))
    torch.testing.assert_close(explanation, supporting + relevance, rtol=0, atol=1e-10)


@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        ([[0.5, 1.0]], TypeError, "torch.Tensor"),
        (torch.zeros(2, 1, 8, 8, dtype=torch.long), TypeError, "floating-point"),
        (torch.zeros(64, dtype=torch.float64), ValueError, "batch dimension"),
        (torch.full((2, 1, 8, 8), math.nan, dtype=torch.float64), ValueError, "NaN"),
    ],
)
def test_bad_input(x, error, match):
    net, _, _, centroids = setup(bias=True)
    explainer = DeepKMeans(net, centroids)
    with pytest.raises(error, match=match):
        explainer(x)
    with pytest.raises(error, match=match):
        explainer.logits(x)


def test_features_that_do_not_match_the_centroids():
    net, x, _, _ = setup(bias=True)
    explainer = DeepKMeans(net, torch.zeros(3, 7, dtype=torch.float64))
    for method in (explainer, explainer.logits):
        with pytest.raises(ValueError, match="5 values per sample .* centroids have 7"):
            method(x)


def test_features_that_return_no_tensor():
    class Pair(nn.Module):
        def forward(self, x):
            return x, x

    explainer = DeepKMeans(Pair(), torch.zeros(2, 2, dtype=torch.float64))
    with pytest.raises(TypeError, match="one tensor, got tuple"):
        explainer.logits(torch.zeros(1, 2, dtype=torch.float64))


@pytest.mark.parametrize(
    ("target", "error", "match"),
    [(4, ValueError, "out of range"), (torch.zeros(12, 3, dtype=torch.float64), ValueError, "shaped like")],
)
def test_bad_target(target, error, match):
    net, x, _, centroids = setup(bias=True)
    with pytest.raises(error, match=match):
        DeepKMeans(net, centroids)(x, target)


def test_bad_construction():
    net, _, _, centroids = setup(bias=True)
    with pytest.raises(TypeError, match="nn.Module"):
        DeepKMeans(lambda x: x, centroids)
    with pytest.raises(TypeError, match="Composite"):
        DeepKMeans(net, centroids, composite=rules.Epsilon())
    with pytest.raises(ValueError, match="beta"):
        DeepKMeans(net, centroids, beta=-1.0)
    with pytest.raises(TypeError, match="beta"):
        DeepKMeans(net, centroids, beta="1")
    with pytest.raises(NotFittedError):
        DeepKMeans(net, KMeans(n_clusters=3))
    with pytest.raises(ValueError, match="NaN"):
        DeepKMeans(net, np.array([[0.0, np.nan], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="training mode"):
        DeepKMeans(nn.Sequential(nn.Linear(2, 2), nn.Dropout()).double(), centroids)
