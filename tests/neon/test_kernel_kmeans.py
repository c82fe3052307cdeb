import math

import numpy as np
import pytest
import torch

from relprop.neon import NEON, NeuralizedKernelKMeans, neuralize_kernel_kmeans

GOLDEN_SUPPORT = [[[0.0, 0.0], [0.0, 1.0]], [[3.0, 0.0], [2.0, 2.0]]]
X_GOLDEN = torch.tensor([[1.0, 0.2]], dtype=torch.float64)


def brute_force_logits(x, support, gamma):
    soft = torch.stack(
        [-torch.log(torch.exp(-gamma * torch.cdist(x, s) ** 2).mean(1)) / gamma for s in support], dim=1
    )
    k = len(support)
    return torch.stack(
        [torch.stack([soft[:, j] - soft[:, c] for j in range(k) if j != c]).amin(0) for c in range(k)], dim=1
    )


@pytest.fixture
def random_model():
    generator = torch.Generator().manual_seed(1)
    support = [
        torch.randn(n, 4, generator=generator, dtype=torch.float64) + 2 * k for k, n in enumerate((3, 5, 4))
    ]
    x = 2 * torch.randn(30, 4, generator=generator, dtype=torch.float64) + 2
    return NeuralizedKernelKMeans(support, gamma=0.4), support, x


def test_golden_value():
    model = NeuralizedKernelKMeans(GOLDEN_SUPPORT, gamma=1.0)
    assert model(X_GOLDEN)[0].tolist() == pytest.approx([2.839349, -2.839349], rel=1e-6)
    assert NEON(model)(X_GOLDEN)[0].tolist() == pytest.approx([1.699468, 1.139881], rel=1e-6)


def test_logits_equal_brute_force_and_sign(random_model):
    model, support, x = random_model
    logits = model(x)
    torch.testing.assert_close(logits, brute_force_logits(x, support, 0.4), rtol=0, atol=1e-10)
    assert ((logits > 0).sum(1) == 1).all()


@pytest.mark.parametrize("beta", [0.0, 1.0, 20.0, math.inf])
def test_conservation(random_model, beta):
    model, _, x = random_model
    logits = model(x)
    for cluster in range(3):
        torch.testing.assert_close(
            NEON(model, beta=beta)(x, cluster).sum(1), logits[:, cluster], rtol=0, atol=1e-9
        )


def test_translation_invariance(random_model):
    model, support, x = random_model
    shift = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    shifted = NeuralizedKernelKMeans([s + shift for s in support], gamma=0.4)
    torch.testing.assert_close(NEON(shifted)(x + shift), NEON(model)(x), rtol=0, atol=1e-10)


def test_single_support_point_per_cluster_is_kmeans():
    from relprop.neon import NeuralizedKMeans

    centroids = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0]], dtype=torch.float64)
    kernel = NeuralizedKernelKMeans([c[None] for c in centroids], gamma=0.7)
    plain = NeuralizedKMeans(centroids)
    x = torch.tensor([[0.5, 1.0], [1.5, 2.5]], dtype=torch.float64)
    torch.testing.assert_close(kernel(x), plain(x))
    torch.testing.assert_close(NEON(kernel, beta=0.3)(x), NEON(plain, beta=0.3)(x))


def test_reduced_support_from_data():
    rng = np.random.default_rng(0)
    data = np.concatenate([rng.normal(size=(30, 2)), rng.normal(size=(20, 2)) + 5])
    labels = np.repeat([0, 1], [30, 20])
    model = neuralize_kernel_kmeans(data, labels, gamma=0.5, n_support_per_cluster=4)
    assert model.support.shape == (8, 2)
    assert (model(torch.from_numpy(data)).argmax(1).numpy() == labels).all()
    full = neuralize_kernel_kmeans(data, labels, gamma=0.5)
    assert full.support.shape == (50, 2)


def test_bad_input():
    with pytest.raises(ValueError, match="gamma"):
        NeuralizedKernelKMeans(GOLDEN_SUPPORT, gamma=0.0)
    with pytest.raises(ValueError, match="at least 2"):
        NeuralizedKernelKMeans(GOLDEN_SUPPORT[:1], gamma=1.0)
    with pytest.raises(ValueError, match="same width"):
        NeuralizedKernelKMeans([[[0.0, 0.0]], [[1.0, 2.0, 3.0]]], gamma=1.0)
    with pytest.raises(ValueError, match="non-empty"):
        neuralize_kernel_kmeans(np.zeros((3, 2)), np.array([0, 2, 2]), gamma=1.0)
    with pytest.raises(TypeError, match="integers"):
        neuralize_kernel_kmeans(np.zeros((2, 2)), np.array([0.0, 1.0]), gamma=1.0)
