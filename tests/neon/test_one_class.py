import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.svm import SVC, OneClassSVM

from relprop.neon import NEON, NeuralizedOneClassSVM, neuralize_one_class_svm


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(80, 6))
    estimator = OneClassSVM(gamma="scale", nu=0.2).fit(data)
    test = torch.from_numpy(rng.normal(scale=1.5, size=(25, 6)))
    return estimator, neuralize_one_class_svm(estimator), test


def test_golden_value_uniform_weights():
    model = NeuralizedOneClassSVM([[0.0, 0.0], [3.0, 0.0]], [0.5, 0.5], gamma=1.0)
    x = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    assert model(x).item() == pytest.approx(2.644560, rel=1e-6)
    assert NEON(model)(x)[0].tolist() == pytest.approx([1.359906, 1.284654], rel=1e-6)
    summed = NeuralizedOneClassSVM([[0.0, 0.0], [3.0, 0.0]], [1.0, 1.0], gamma=1.0)
    assert summed(x).item() == pytest.approx(1.951413, rel=1e-6)


def test_score_matches_decision_function(fitted):
    estimator, model, x = fitted
    total = estimator.dual_coef_.sum()
    expected = (
        -np.log((estimator.decision_function(x.numpy()) + estimator.offset_) / total) / estimator._gamma
    )
    np.testing.assert_allclose(model(x)[:, 0].numpy(), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(model.log_weights.exp().sum().item(), 1.0)
    # Outliers (predict == -1) are exactly the samples with a score above -log(offset_ / A) / gamma.
    threshold = -np.log(estimator.offset_[0] / total) / estimator._gamma
    assert ((model(x)[:, 0].numpy() > threshold) == (estimator.predict(x.numpy()) == -1)).all()


def test_conservation_non_negativity_and_image_shape(fitted):
    _, model, x = fitted
    images = x.reshape(25, 1, 2, 3)
    relevance = NEON(model)(images)
    assert relevance.shape == images.shape
    assert (model(x) > 0).all() and (relevance >= 0).all()
    torch.testing.assert_close(relevance.sum((1, 2, 3)), model(x)[:, 0], rtol=0, atol=1e-12)


def test_gradient_shortcut_equals_explicit_rule(fitted):
    _, model, x = fitted
    support = model.support.clone().requires_grad_(True)
    weights = model.log_weights.exp()
    distances = ((x[:, None, :] - support) ** 2).sum(2)
    score = -torch.log((weights * torch.exp(-model.gamma * distances)).sum(1)) / model.gamma
    # R = -1/2 sum_j (x - u_j) * d o / d u_j * o / ||x - u_j||^2, one sample at a time.
    shortcut = []
    for b in range(x.shape[0]):
        (g,) = torch.autograd.grad(score[b], support, retain_graph=True)
        terms = -0.5 * (x[b] - support) * g * score[b] / distances[b, :, None]
        shortcut.append(terms.sum(0))
    torch.testing.assert_close(torch.stack(shortcut).detach(), NEON(model)(x), rtol=1e-10, atol=1e-12)


def test_relevance_is_non_negative_for_outliers_with_positive_score():
    model = NeuralizedOneClassSVM([[0.0, 0.0], [1.0, 1.0]], [0.3, 0.2], gamma=2.0)
    x = torch.tensor([[4.0, -3.0], [0.2, 5.0]], dtype=torch.float64)
    assert (model(x) > 0).all()
    assert (NEON(model)(x) >= 0).all()


def test_errors():
    with pytest.raises(NotFittedError, match="OneClassSVM"):
        neuralize_one_class_svm(OneClassSVM())
    data = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(ValueError, match="'linear'"):
        neuralize_one_class_svm(OneClassSVM(kernel="linear").fit(data))
    with pytest.raises(TypeError, match="SVC"):
        neuralize_one_class_svm(SVC().fit(data, np.arange(20) % 2))
    with pytest.raises(ValueError, match="positive"):
        NeuralizedOneClassSVM([[0.0, 0.0]], [-1.0], gamma=1.0)
