import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.svm import SVC, NuSVC

from relprop.neon import NEON, NeuralizedSVC, neuralize_svc


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(100, 5))
    labels = np.where(data[:, 0] + 0.5 * data[:, 1] ** 2 > 0.3, "yes", "no")
    estimator = SVC(gamma=0.2, C=3.0).fit(data, labels)
    return estimator, neuralize_svc(estimator), torch.from_numpy(rng.normal(size=(20, 5)))


def test_decision_and_prediction_match_sklearn(fitted):
    estimator, model, x = fitted
    np.testing.assert_allclose(model(x)[:, 1].numpy(), estimator.decision_function(x.numpy()), rtol=1e-12)
    predicted = estimator.classes_[model(x).argmax(1).numpy()]
    assert (predicted == estimator.predict(x.numpy())).all()


def test_nusvc_decision_matches():
    rng = np.random.default_rng(1)
    data = rng.normal(size=(60, 3))
    estimator = NuSVC(gamma="scale").fit(data, data[:, 0] > 0)
    model = neuralize_svc(estimator)
    np.testing.assert_allclose(
        model.decision(torch.from_numpy(data)).numpy(), estimator.decision_function(data)
    )


def test_root_point_lies_on_the_decision_boundary(fitted):
    _, model, x = fitted
    root = model.root_point(x)
    assert model.decision(root).abs().max() < 1e-12
    # Root point is on the segment from x towards an opposite-sign support vector.
    assert (model.decision(x) * model.decision(x + 0.5 * (root - x)) > 0).all()


def test_relevance_is_gradient_times_difference_at_root(fitted):
    _, model, x = fitted
    root = model.root_point(x).requires_grad_(True)
    (gradient,) = torch.autograd.grad(model.decision(root).sum(), root)
    predicted = model(x).argmax(1)
    sign = torch.where(predicted == 1, 1.0, -1.0).to(x)[:, None]
    torch.testing.assert_close(NEON(model)(x), sign * gradient * (x - root.detach()))
    torch.testing.assert_close(NEON(model)(x, 0), -NEON(model)(x, 1))


def test_conservation_up_to_taylor_remainder_on_near_linear_model():
    # With a tiny gamma the decision function is almost linear, so the first-order Taylor
    # expansion at the root point conserves it almost exactly.
    rng = np.random.default_rng(2)
    data = rng.normal(size=(80, 4))
    estimator = SVC(gamma=1e-4, C=100.0).fit(data, data @ np.array([1.0, -2.0, 0.5, 0.0]) > 0)
    model = neuralize_svc(estimator)
    x = torch.from_numpy(data[:10])
    relevance = NEON(model)(x)
    explained = model(x).amax(1)
    assert (explained > 0).all()
    torch.testing.assert_close(relevance.sum(1), explained, rtol=1e-3, atol=0)


def test_errors(fitted):
    with pytest.raises(NotFittedError, match="SVC"):
        neuralize_svc(SVC())
    rng = np.random.default_rng(0)
    data = rng.normal(size=(30, 2))
    with pytest.raises(ValueError, match="'poly'"):
        neuralize_svc(SVC(kernel="poly").fit(data, data[:, 0] > 0))
    with pytest.raises(ValueError, match="binary"):
        neuralize_svc(SVC().fit(data, np.arange(30) % 3))
    with pytest.raises(ValueError, match="across the decision boundary"):
        NeuralizedSVC([[0.0, 0.0]], [1.0], intercept=0.5, gamma=1.0).root_point(
            torch.zeros(1, 2, dtype=torch.float64)
        )
