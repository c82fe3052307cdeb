"""NEON on scikit-learn's digits: why a sample belongs to its k-means cluster, why a digit is an outlier.

Fits k-means with 10 clusters on the 8x8 digits and explains, for one sample per cluster, the
cluster-membership logit (red: evidence for the cluster against its nearest competitors, blue:
evidence against). Then fits a one-class SVM on the zeros only and explains the outlier score of
other digits (red: pixels that make the sample unlike the zeros). Last, deep k-means: k-means on the
features of a small network trained for a moment on the labels, explained through the network with
LRP-epsilon (which passes the signed relevance of the k-means head on). Writes ``neon_digits.png``.

Run: ``python examples/neon_digits.py [output.png]`` (a few seconds on CPU).
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.svm import OneClassSVM  # noqa: E402
from torch import nn  # noqa: E402

from relprop.neon import NEON, DeepKMeans, neuralize_kmeans, neuralize_one_class_svm  # noqa: E402

N_COLUMNS = 10


def show(axis: plt.Axes, image: np.ndarray, heatmap: bool, title: str) -> None:
    if heatmap:
        limit = np.abs(image).max() or 1.0
        axis.imshow(image, cmap="bwr", vmin=-limit, vmax=limit)
    else:
        axis.imshow(image, cmap="gray_r", vmin=0, vmax=1)
    axis.set_title(title, fontsize=7)
    axis.set_xticks([])
    axis.set_yticks([])


def deep_kmeans(images: torch.Tensor, labels: np.ndarray) -> DeepKMeans:
    """k-means with 10 clusters on the 8 features of an MLP trained briefly to classify the digits."""
    torch.manual_seed(0)
    features = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 8)).double()
    classifier = nn.Sequential(features, nn.ReLU(), nn.Linear(8, 10)).double()
    optimizer = torch.optim.Adam(classifier.parameters(), lr=0.02)
    for _ in range(100):
        optimizer.zero_grad()
        nn.functional.cross_entropy(classifier(images), torch.from_numpy(labels)).backward()
        optimizer.step()
    features.eval()
    with torch.no_grad():
        phi = features(images).numpy()
    return DeepKMeans(features, KMeans(n_clusters=10, n_init=10, random_state=0).fit(phi))


def main(output: str = "neon_digits.png") -> None:
    digits = load_digits()
    data = digits.data / 16.0
    images = torch.from_numpy(data).reshape(-1, 1, 8, 8)

    # k-means: one sample per cluster, explained with beta = 1 / mean logit (scale of the logits).
    kmeans = KMeans(n_clusters=10, n_init=10, random_state=0).fit(data)
    model = neuralize_kmeans(kmeans)
    logits = model(images)
    assert (logits.argmax(1).numpy() == kmeans.predict(data)).all()
    beta = 1.0 / logits.amax(1).mean().item()
    chosen = [int(np.flatnonzero(kmeans.labels_ == c)[0]) for c in range(10)]
    cluster_relevance = NEON(model, beta=beta)(images[chosen])
    conservation = (cluster_relevance.sum((1, 2, 3)) - logits[chosen].amax(1)).abs().max().item()

    # One-class SVM on the zeros; explain the outlier score of other digits (the most outlying ones).
    zeros = data[digits.target == 0]
    one_class = OneClassSVM(gamma="scale", nu=0.1).fit(zeros)
    outlier_model = neuralize_one_class_svm(one_class)
    others = np.flatnonzero(digits.target != 0)
    scores = outlier_model(images[others])[:, 0]
    per_digit = [
        others[digits.target[others] == d][scores[digits.target[others] == d].argmax()] for d in range(1, 10)
    ]
    outliers = [int(np.flatnonzero(digits.target == 0)[0])] + [int(i) for i in per_digit]
    outlier_relevance = NEON(outlier_model)(images[outliers])
    outlier_scores = outlier_model(images[outliers])[:, 0]

    # Deep k-means: one sample per cluster of the features, beta = 1 / mean logit as above.
    deep = deep_kmeans(images, digits.target)
    deep_logits = deep.logits(images)
    deep = DeepKMeans(deep.features, deep.head, beta=1.0 / deep_logits.amax(1).mean().item())
    deep_assigned = deep_logits.argmax(1).numpy()
    deep_chosen = [int(np.flatnonzero(deep_assigned == c)[0]) for c in range(10)]
    deep_relevance = deep(images[deep_chosen])

    figure, axes = plt.subplots(6, N_COLUMNS, figsize=(N_COLUMNS * 1.1, 7.8))
    for column, (index, relevance) in enumerate(zip(chosen, cluster_relevance, strict=True)):
        show(
            axes[0, column],
            data[index].reshape(8, 8),
            False,
            f"cluster {column}\nlabel {digits.target[index]}",
        )
        show(axes[1, column], relevance[0].numpy(), True, f"logit {logits[index].max():.2f}")
    for column, (index, relevance) in enumerate(zip(outliers, outlier_relevance, strict=True)):
        kind = "inlier" if digits.target[index] == 0 else "outlier"
        show(axes[2, column], data[index].reshape(8, 8), False, f"digit {digits.target[index]}\n{kind}")
        show(axes[3, column], relevance[0].numpy(), True, f"o(x) {outlier_scores[column]:.2f}")
    for column, (index, relevance) in enumerate(zip(deep_chosen, deep_relevance, strict=True)):
        show(
            axes[4, column],
            data[index].reshape(8, 8),
            False,
            f"cluster {column}\nlabel {digits.target[index]}",
        )
        show(axes[5, column], relevance[0].numpy(), True, f"logit {deep_logits[index].max():.1f}")
    axes[0, 0].set_ylabel("k-means", fontsize=8)
    axes[2, 0].set_ylabel("one-class\n(zeros)", fontsize=8)
    axes[4, 0].set_ylabel("deep\nk-means", fontsize=8)
    figure.suptitle(
        "NEON on digits: rows 1-2 cluster membership, rows 3-4 outlier score, rows 5-6 membership of "
        "k-means on network features (red +, blue -)",
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(output, dpi=120)
    print(f"beta = {beta:.4f}, max |sum R - logit| = {conservation:.2e}, wrote {output}")
    inlier_threshold = -np.log(one_class.offset_[0] / one_class.dual_coef_.sum()) / outlier_model.gamma
    print(
        f"one-class: scores of the shown samples {np.round(outlier_scores.numpy(), 2)}, "
        f"outlier above {inlier_threshold:.2f}"
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
