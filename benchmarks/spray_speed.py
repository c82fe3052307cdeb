"""Time SpRAy steps 1-5 on 50,000 synthetic 32x32 heatmaps with planted structure.

Five planted strategies: four Gaussian blobs of relevance at different places (jittered centre) and
a 4x4 corner "tag", plus half-normal noise everywhere. Prints the time per step, the total, the
eigengap suggestion and the adjusted Rand index against the planted groups.

Run: python benchmarks/spray_speed.py [--n 50000] [--size 32] [--pca 64]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import adjusted_rand_score

from relprop.spray import (
    SpRAy,
    cluster_embedding,
    eigengap,
    knn_affinity,
    laplacian_spectrum,
    preprocess_heatmaps,
    spectral_embedding,
)


def planted_heatmaps(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, size, size) float32 heatmaps and their planted group (0-3: blobs, 4: corner tag)."""
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, 5, n)
    heatmaps = np.abs(rng.normal(0.0, 0.05, (n, size, size))).astype(np.float32)
    grid_y, grid_x = np.mgrid[0:size, 0:size].astype(np.float32)
    centres = np.array([[0.25, 0.25], [0.25, 0.75], [0.75, 0.5], [0.5, 0.5]], dtype=np.float32) * size
    width = size / 10
    for group, centre in enumerate(centres):
        members = np.flatnonzero(groups == group)
        jitter = rng.normal(0.0, size / 20, (len(members), 2)).astype(np.float32)
        cy, cx = (centre + jitter).T
        for chunk in np.array_split(np.arange(len(members)), max(1, len(members) // 2000)):
            dy = grid_y - cy[chunk, None, None]
            dx = grid_x - cx[chunk, None, None]
            heatmaps[members[chunk]] += np.exp(-(dy**2 + dx**2) / (2 * width**2))
    heatmaps[groups == 4, -4:, -4:] += 1.0
    return heatmaps, groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--pca", type=int, default=64, help="pca_components; 0 for exact neighbours")
    args = parser.parse_args()
    heatmaps, groups = planted_heatmaps(args.n, args.size)
    spray = SpRAy(size=32, pca_components=args.pca or None, seed=0)

    times = {}

    def stamp(step: str) -> None:
        times[step] = (time.perf_counter(), time.process_time())

    start = (time.perf_counter(), time.process_time())
    features = preprocess_heatmaps(heatmaps, spray.size, spray.absolute, spray.norm)
    stamp("1 preprocess")
    space = spray.neighbour_space(features)
    stamp("2a pca")
    affinity = knn_affinity(space, spray.n_neighbors, spray.weights)
    stamp("2b knn graph")
    spectrum = laplacian_spectrum(affinity, spray.n_eigenvalues, seed=0)
    stamp("3 eigenpairs")
    gap = eigengap(spectrum.eigenvalues, spray.max_clusters)
    stamp("4 eigengap")
    labels = cluster_embedding(spectral_embedding(spectrum, gap.n_clusters), "kmeans", gap.n_clusters, seed=0)
    stamp("5 k-means")

    previous = start
    print(f"N={args.n} heatmaps {args.size}x{args.size}, pca_components={args.pca or None}")
    print("  step              wall s    CPU s (summed over threads)")
    for step, (wall, cpu) in times.items():
        print(f"  {step:14s} {wall - previous[0]:8.2f} {cpu - previous[1]:8.2f}")
        previous = (wall, cpu)
    print(f"  {'total':14s} {previous[0] - start[0]:8.2f} {previous[1] - start[1]:8.2f}")
    print(
        f"eigengap: {gap.n_clusters} clusters, score {gap.score:.1f}; "
        f"first eigenvalues {spectrum.eigenvalues[:7].round(4)}"
    )
    print(f"adjusted Rand index vs planted groups: {adjusted_rand_score(groups, labels):.4f}")


if __name__ == "__main__":
    main()
