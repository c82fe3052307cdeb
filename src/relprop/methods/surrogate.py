"""Surrogate models on superpixels: KernelSHAP and LIME fit a linear model to the outputs of masked inputs."""

from __future__ import annotations

import math

import numpy as np
import torch
from skimage.segmentation import slic
from torch import Tensor, nn

from relprop.checks import check_int, check_number, check_seed
from relprop.methods._common import Method, baseline_like, chunks, explained, forward, weights_at
from relprop.targets import Target


class _SuperpixelSurrogate(Method):
    """Shared by :class:`KernelSHAP` and :class:`LIME`: segment, sample coalitions, evaluate, fit, spread.

    Subclasses define :meth:`_coalitions` (which superpixels are kept, and the weight of each coalition in
    the fit) and :meth:`_fit` (the coefficient of each superpixel).
    """

    def __init__(
        self,
        model: nn.Module,
        n_segments: int = 50,
        samples: int = 200,
        seed: int | None = 0,
        baseline: float | Tensor = 0.0,
        compactness: float = 10.0,
        batch_size: int = 256,
    ) -> None:
        super().__init__(model)
        self.n_segments = check_int(n_segments, "n_segments")
        self.samples = check_int(samples, "samples")
        self.seed = check_seed(seed)
        self.baseline = baseline
        self.compactness = check_number(compactness, "compactness", strict=True)
        self.batch_size = check_int(batch_size, "batch_size")

    def segment(self, x: Tensor) -> Tensor:
        """SLIC superpixels of each image of ``x`` (``(B, C, H, W)``): labels ``0..M-1``, shaped
        ``(B, H, W)``.

        Each image is scaled to ``[0, 1]`` first; three-channel images are segmented in Lab colour space
        (scikit-image's default). SLIC may return fewer superpixels than ``n_segments``: on colour noise it
        can return a single one unless ``compactness`` is raised (about 100), so check ``segment(x)`` on
        unusual images.
        """
        _check_images(x)
        labels = []
        for image in x.detach().cpu().to(torch.float64).numpy():
            low, high = image.min(), image.max()
            scaled = np.moveaxis((image - low) / (high - low) if high > low else image * 0.0, 0, -1)
            multichannel = scaled.shape[-1] > 1
            segments = slic(
                scaled if multichannel else scaled[..., 0],
                n_segments=self.n_segments,
                compactness=self.compactness,
                channel_axis=-1 if multichannel else None,
                start_label=0,
            )
            labels.append(np.unique(segments, return_inverse=True)[1].reshape(segments.shape))
        return torch.as_tensor(np.stack(labels), dtype=torch.long, device=x.device)

    def _attribute(self, x: Tensor, target: Target) -> Tensor:
        _check_images(x)
        baseline = baseline_like(self.baseline, x, "baseline")
        weights = weights_at(self.model, x, target)
        segments = self.segment(x)
        rng = np.random.default_rng(self.seed)
        attribution = torch.empty_like(x)
        for b in range(x.shape[0]):
            labels = segments[b]
            m = int(labels.max()) + 1
            kept, kernel = self._coalitions(m, rng)
            every = np.concatenate([np.ones((1, m), bool), np.zeros((1, m), bool), kept])
            values = self._evaluate(x[b], baseline[b], weights[b], labels, every)
            coefficients = self._fit(kept.astype(np.float64), kernel, values[2:], values[0], values[1])
            sizes = np.bincount(labels.flatten().cpu().numpy(), minlength=m) * x.shape[1]
            per_element = torch.as_tensor(coefficients / sizes, dtype=x.dtype, device=x.device)
            attribution[b] = per_element[labels].unsqueeze(0).expand_as(x[b])
        return attribution

    def _evaluate(self, x: Tensor, baseline: Tensor, weights: Tensor, labels: Tensor, kept: np.ndarray):
        """The explained quantity on ``x`` with the superpixels of each row of ``kept`` kept, the rest set to
        the baseline."""
        kept_t = torch.as_tensor(kept, device=x.device)
        values = []
        with torch.no_grad():
            for part in chunks(len(kept), self.batch_size):
                mask = kept_t[part.start : part.stop][:, labels].unsqueeze(1)  # (n, 1, H, W)
                inputs = torch.where(mask, x, baseline)
                output = forward(self.model, inputs)
                values.append(explained(output, weights.expand_as(output)))
        return torch.cat(values).to(torch.float64).cpu().numpy()

    def _coalitions(self, m: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _fit(self, kept: np.ndarray, kernel: np.ndarray, values, full: float, empty: float) -> np.ndarray:
        raise NotImplementedError


class KernelSHAP(_SuperpixelSurrogate):
    r"""KernelSHAP (Lundberg and Lee 2017) on SLIC superpixels.

    Each image is cut into about ``n_segments`` superpixels (:meth:`segment`). A coalition
    :math:`z \in \{0,1\}^M` keeps the superpixels with :math:`z_s = 1` and sets the others to the baseline;
    :math:`v(z)` is the explained quantity on that input. The Shapley values :math:`\phi` solve

    .. math:: \min_\phi \sum_z \pi(z) \big(v(z) - v(0) - z^\top\phi\big)^2
              \quad\text{subject to}\quad \sum_s \phi_s = v(1) - v(0),
              \qquad \pi(z) = \frac{M-1}{\binom{M}{|z|}\,|z|\,(M-|z|)}.

    When all :math:`2^M - 2` proper coalitions fit in ``samples`` they are all used and :math:`\phi` are
    the exact Shapley values of the superpixels; otherwise ``samples`` coalitions are drawn with
    probability proportional to :math:`\pi` (a size :math:`s` with probability
    :math:`\propto (M-1)/(s(M-s))`, then a uniform subset of that size) and weighted equally. Draws are
    seeded (``seed``), so results are reproducible. The constraint is solved exactly, by eliminating the
    last coefficient.

    The attribution of each input element is its superpixel's coefficient divided by the number of input
    elements (pixels times channels) of that superpixel, so that the attribution of a superpixel sums to its
    Shapley value and the whole map sums to :math:`f(x) - f(\text{baseline})`. On a model that is linear in
    its input the coefficients are exactly the contributions :math:`\sum_{i \in s} w_i (x_i - \bar x_i)`.

    Parameters
    ----------
    model:
        The model, in evaluation mode; inputs are images ``(B, C, H, W)``.
    n_segments:
        The approximate number of superpixels (scikit-image's ``slic``).
    samples:
        The number of coalitions evaluated per image (besides the full and the empty one).
    seed:
        Seed of the coalitions (``numpy.random.default_rng``); ``None`` draws fresh ones on every call.
    baseline:
        The value of removed superpixels: a scalar, or a tensor shaped like one sample.
    compactness:
        SLIC's balance of colour proximity and space proximity (higher: squarer superpixels).
    batch_size:
        At most this many masked images go through the model at once.
    """

    def _coalitions(self, m, rng):
        if m == 1:
            return np.zeros((0, 1), bool), np.zeros(0)
        if 2**m - 2 <= self.samples:
            kept = (np.arange(1, 2**m - 1)[:, None] >> np.arange(m)) & 1 == 1
            sizes = kept.sum(axis=1)
            kernel = np.array([(m - 1) / (math.comb(m, s) * s * (m - s)) for s in sizes])
            return kept, kernel
        sizes = np.arange(1, m)
        probability = (m - 1) / (sizes * (m - sizes))
        drawn = rng.choice(sizes, size=self.samples, p=probability / probability.sum())
        rank = np.argsort(rng.random((self.samples, m)), axis=1)  # a random permutation per row
        return rank < drawn[:, None], np.ones(self.samples)

    def _fit(self, kept, kernel, values, full, empty):
        total = full - empty
        if kept.shape[1] == 1:
            return np.array([total])
        design = kept[:, :-1] - kept[:, -1:]
        response = values - empty - kept[:, -1] * total
        root = np.sqrt(kernel)
        phi = np.linalg.lstsq(design * root[:, None], response * root, rcond=None)[0]
        return np.append(phi, total - phi.sum())


class LIME(_SuperpixelSurrogate):
    r"""LIME (Ribeiro et al. 2016) on SLIC superpixels, as the ``lime`` package explains images.

    Coalitions :math:`z` keep each superpixel with probability one half (the rest set to the baseline);
    a weighted ridge regression with intercept is fitted to the explained quantity :math:`v(z)`,

    .. math:: \min_{c,\phi} \sum_z \pi(z)\,\big(v(z) - c - z^\top\phi\big)^2 + \alpha \lVert\phi\rVert^2,
              \qquad \pi(z) = \exp\!\big(-d(z)^2 / \sigma^2\big),\quad d(z) = 1 - \sqrt{|z| / M},

    :math:`d` being the cosine distance between :math:`z` and the all-ones coalition (the input itself).
    The attribution is spread over the pixels as in :class:`KernelSHAP`; unlike KernelSHAP's, LIME's
    coefficients need not sum to :math:`f(x) - f(\text{baseline})`.

    Parameters
    ----------
    kernel_width:
        :math:`\sigma` (``lime``'s default for images, 0.25).
    alpha:
        The ridge penalty :math:`\alpha` (``lime``'s default, 1).

    The other parameters are those of :class:`KernelSHAP`.
    """

    def __init__(
        self,
        model: nn.Module,
        n_segments: int = 50,
        samples: int = 200,
        seed: int | None = 0,
        baseline: float | Tensor = 0.0,
        compactness: float = 10.0,
        batch_size: int = 256,
        kernel_width: float = 0.25,
        alpha: float = 1.0,
    ) -> None:
        super().__init__(model, n_segments, samples, seed, baseline, compactness, batch_size)
        self.kernel_width = check_number(kernel_width, "kernel_width", strict=True)
        self.alpha = check_number(alpha, "alpha")

    def _coalitions(self, m, rng):
        kept = rng.random((self.samples, m)) < 0.5
        distance = 1.0 - np.sqrt(kept.sum(axis=1) / m)
        return kept, np.exp(-(distance**2) / self.kernel_width**2)

    def _fit(self, kept, kernel, values, full, empty):
        return weighted_ridge(kept, values, kernel, self.alpha)[0]


def weighted_ridge(
    design: np.ndarray, response: np.ndarray, weights: np.ndarray, alpha: float
) -> tuple[np.ndarray, float]:
    r"""Weighted ridge regression with an unpenalized intercept (scikit-learn's ``Ridge`` with
    ``sample_weight``):

    .. math:: \min_{c,\phi} \sum_k w_k (y_k - c - z_k^\top\phi)^2 + \alpha\lVert\phi\rVert^2

    Returns ``(phi, c)``; the minimum-norm solution where the problem is singular.
    """
    w = weights / weights.sum()
    mean_z, mean_y = w @ design, w @ response
    root = np.sqrt(weights)[:, None]
    stacked = np.vstack([(design - mean_z) * root, math.sqrt(alpha) * np.eye(design.shape[1])])
    target = np.concatenate([(response - mean_y) * root[:, 0], np.zeros(design.shape[1])])
    phi = np.linalg.lstsq(stacked, target, rcond=None)[0]
    return phi, float(mean_y - mean_z @ phi)


def _check_images(x: Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(
            "superpixel methods explain images of shape (batch, channels, height, width), got "
            f"{tuple(x.shape)}"
        )
