"""Tests of the SpRAy analysis core (relprop.spray)."""

from itertools import combinations

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import laplacian
from scipy.spatial.distance import cdist
from sklearn.cluster import SpectralClustering
from sklearn.metrics import adjusted_rand_score
from sklearn.neighbors import NearestNeighbors

from relprop.spray import (
    SpRAy,
    artefact_score,
    artefact_test,
    as_heatmap_array,
    cluster_embedding,
    cluster_statistics,
    eigengap,
    embed_2d,
    knn_affinity,
    laplacian_spectrum,
    normalize,
    spectral,
    spectral_embedding,
    sum_pool,
)
from relprop.spray.artefact import _neighbourhoods
from relprop.spray.graph import _nearest_neighbours


def blob_heatmaps(centres, n_per_group=40, size=16, seed=0):
    """Heatmaps with a Gaussian blob of relevance at a group-specific (jittered) place plus noise."""
    rng = np.random.default_rng(seed)
    grid_y, grid_x = np.mgrid[0:size, 0:size]
    heatmaps, groups = [], []
    for group, (cy, cx) in enumerate(centres):
        for _ in range(n_per_group):
            y, x = np.array([cy, cx]) + rng.normal(0.0, 0.5, 2)
            blob = np.exp(-((grid_y - y) ** 2 + (grid_x - x) ** 2) / (2 * 1.5**2))
            heatmaps.append(blob + np.abs(rng.normal(0.0, 0.05, (size, size))))
            groups.append(group)
    return np.array(heatmaps), np.array(groups)


def clever_hans_heatmaps(seed=0, size=32):
    """80 heatmaps with relevance on a centred shape of varying size, 20 on a 4x4 corner tag."""
    rng = np.random.default_rng(seed)
    grid_y, grid_x = np.mgrid[0:size, 0:size]
    heatmaps = []
    for i in range(100):
        noise = np.abs(rng.normal(0.0, 0.02, (size, size)))
        if i < 80:
            radius = rng.uniform(5.0, 9.0)
            centre = size / 2 + rng.normal(0.0, 1.0, 2)
            ring = np.abs(np.hypot(grid_y - centre[0], grid_x - centre[1]) - radius) < 1.5
            heatmaps.append(ring * rng.uniform(0.5, 1.0, (size, size)) + noise)
        else:
            tag = np.zeros((size, size))
            tag[-6:-2, 2:6] = rng.uniform(0.8, 1.0, (4, 4))
            heatmaps.append(tag + noise)
    return np.array(heatmaps), np.arange(100) >= 80


def moving_blob_heatmaps(n=150, size=32, sigma=3.0, seed=0):
    """Heatmaps with one Gaussian blob of relevance each, at a random place (an object that moves)."""
    rng = np.random.default_rng(seed)
    grid_y, grid_x = np.mgrid[0:size, 0:size]
    centres = rng.uniform(0.2 * size, 0.8 * size, (n, 2))
    blobs = np.exp(
        -((grid_y - centres[:, :1, None]) ** 2 + (grid_x - centres[:, 1:, None]) ** 2) / (2 * sigma**2)
    )
    return blobs + np.abs(rng.normal(0.0, 0.02, blobs.shape))


# ---------------------------------------------------------------- preprocessing


def test_channel_sum_and_torch_input():
    rng = np.random.default_rng(0)
    heatmaps = rng.normal(size=(4, 3, 5, 6))
    expected = heatmaps.sum(axis=1)
    np.testing.assert_allclose(as_heatmap_array(heatmaps), expected)
    np.testing.assert_allclose(as_heatmap_array(torch.from_numpy(heatmaps)), expected)
    assert as_heatmap_array(heatmaps.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize(
    ("heatmaps", "message"),
    [
        (np.zeros((0, 8, 8)), "empty"),
        (np.zeros((8, 8)), "shape"),
        (np.array([[[0.0, np.nan]]] * 3), "NaN"),
        (np.array([[[0.0, np.inf]]] * 3), "NaN or infinite"),
    ],
)
def test_bad_heatmaps_raise(heatmaps, message):
    with pytest.raises(ValueError, match=message):
        as_heatmap_array(heatmaps)


def test_sum_pool_block_sums_when_divisible():
    heatmaps = np.arange(2 * 4 * 6, dtype=np.float64).reshape(2, 4, 6)
    expected = heatmaps.reshape(2, 2, 2, 3, 2).sum(axis=(2, 4))
    np.testing.assert_allclose(sum_pool(heatmaps, (2, 3)), expected)


def test_sum_pool_splits_border_pixels_by_overlap():
    # 5 columns into 2 cells: [0, 2.5) and [2.5, 5); the middle pixel is shared half/half
    row = np.array([[[1.0, 2.0, 3.0, 4.0, 5.0]]])
    np.testing.assert_allclose(sum_pool(row, (1, 2)), [[[4.5, 10.5]]])


def test_sum_pool_preserves_totals():
    heatmaps = np.random.default_rng(1).normal(size=(3, 37, 29))
    pooled = sum_pool(heatmaps, (8, 5))
    assert pooled.shape == (3, 8, 5)
    np.testing.assert_allclose(pooled.sum(axis=(1, 2)), heatmaps.sum(axis=(1, 2)), rtol=1e-12)


def test_sum_pool_rejects_enlarging_and_bad_sizes():
    with pytest.raises(ValueError, match="enlarge"):
        sum_pool(np.zeros((1, 4, 4)), 8)
    with pytest.raises(ValueError, match="size"):
        sum_pool(np.zeros((1, 4, 4)), (0, 2))


@pytest.mark.parametrize(
    ("norm", "measure"),
    [
        ("l1", lambda x: np.abs(x).sum(axis=(1, 2))),
        ("l2", lambda x: np.sqrt((x**2).sum(axis=(1, 2)))),
        ("max", lambda x: np.abs(x).max(axis=(1, 2))),
    ],
)
def test_normalize_unit_norm_and_no_blow_up(norm, measure):
    rng = np.random.default_rng(2)
    heatmaps = rng.normal(size=(4, 5, 5))
    heatmaps[1] = 0.0  # all zero
    heatmaps[2] *= 1e-30  # near zero
    heatmaps[3] -= heatmaps[3].mean()  # signed total exactly zero
    result = normalize(heatmaps, norm, eps=1e-6)
    norms = measure(result)
    assert np.isfinite(result).all()
    np.testing.assert_allclose(norms[[0, 3]], 1.0)
    assert norms[1] == 0.0
    assert norms[2] < 1e-20  # divided by the floor eps * max norm, not by its own tiny norm


def test_normalize_unknown_norm():
    with pytest.raises(ValueError, match="norm"):
        normalize(np.ones((2, 3, 3)), "sum")


# ---------------------------------------------------------------- graph


def dense_knn_affinity(features, k, kernel):
    distances = cdist(features, features)
    np.fill_diagonal(distances, np.inf)
    directed = np.zeros_like(distances)
    for i, row in enumerate(distances):
        nearest = np.argsort(row)[:k]
        directed[i, nearest] = kernel(row[nearest])
    return (directed + directed.T) / 2


def test_knn_affinity_matches_dense_reference():
    features = np.random.default_rng(3).normal(size=(30, 4))
    binary = knn_affinity(features, n_neighbors=4)
    np.testing.assert_allclose(binary.toarray(), dense_knn_affinity(features, 4, np.ones_like))
    heat = knn_affinity(features, n_neighbors=4, weights="heat", bandwidth=0.7)
    expected = dense_knn_affinity(features, 4, lambda d: np.exp(-(d**2) / (2 * 0.7**2)))
    np.testing.assert_allclose(heat.toarray(), expected)
    assert sp.issparse(binary) and binary.nnz <= 2 * 30 * 4


@pytest.mark.parametrize("structure", ["clusters", "uniform", "duplicates"])
def test_nearest_neighbours_are_exact(structure):
    # the cell-pruned search against scikit-learn's brute force: clustered data (most cells pruned),
    # data without structure (nearly none pruned) and every sample three times (zero distances)
    rng = np.random.default_rng(7)
    if structure == "clusters":
        features = rng.normal(0.0, 4.0, (6, 8))[rng.integers(0, 6, 3000)] + rng.normal(size=(3000, 8))
    elif structure == "uniform":
        features = rng.uniform(size=(3000, 8))
    else:
        features = np.repeat(rng.normal(size=(400, 3)), 3, axis=0)
    indices, distances = _nearest_neighbours(features, 7)
    reference_distances, reference_indices = NearestNeighbors(n_neighbors=7).fit(features).kneighbors()
    np.testing.assert_allclose(distances, np.linalg.norm(features[:, None] - features[indices], axis=-1))
    np.testing.assert_allclose(np.sort(distances, axis=1), reference_distances, atol=1e-12)
    assert (indices != np.arange(len(features))[:, None]).all()
    if structure == "duplicates":
        assert (np.sort(distances, axis=1)[:, :2] == 0.0).all()
    else:  # no ties
        np.testing.assert_array_equal(np.sort(indices, axis=1), np.sort(reference_indices, axis=1))


def test_knn_affinity_needs_more_samples_than_neighbours():
    with pytest.raises(ValueError, match="n_neighbors=10 needs more than 10 samples, got 5"):
        knn_affinity(np.zeros((5, 3)), n_neighbors=10)
    with pytest.raises(ValueError, match="weights"):
        knn_affinity(np.random.default_rng(0).normal(size=(20, 2)), n_neighbors=3, weights="gauss")
    with pytest.raises(ValueError, match="NaN"):
        knn_affinity(np.full((20, 2), np.nan), n_neighbors=3)


# ---------------------------------------------------------------- spectrum and eigengap


def assert_matches_dense_laplacian(affinity, spectrum, atol=1e-8):
    lap = laplacian(affinity.toarray(), normed=True)
    reference = scipy.linalg.eigvalsh(lap)[: len(spectrum.eigenvalues)]
    np.testing.assert_allclose(spectrum.eigenvalues, reference, atol=atol)
    vectors = spectrum.eigenvectors
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(vectors.shape[1]), atol=1e-8)
    np.testing.assert_allclose(lap @ vectors, vectors * spectrum.eigenvalues, atol=1e-6)


def test_laplacian_spectrum_dense_path_matches_scipy():
    affinity = knn_affinity(np.random.default_rng(4).normal(size=(60, 3)), n_neighbors=5)
    spectrum = laplacian_spectrum(affinity, n_eigenvalues=8, seed=0)
    assert_matches_dense_laplacian(affinity, spectrum)
    assert spectrum.eigenvalues[0] == 0.0 and spectrum.trivial.tolist() == [True] + [False] * 7


# the spectral transforms of the Lanczos path: shift-invert, and the polynomial filter taken when the
# envelope is too large for a factorization or the factorization would exceed its fill limit
SPECTRAL_TRANSFORMS = {
    "shift-invert": {},
    "polynomial, large envelope": {"_ENVELOPE_FRACTION": 0.0},
    "polynomial, fill exceeded": {"_FILL_FACTOR": 1},
}


@pytest.fixture(params=list(SPECTRAL_TRANSFORMS))
def spectral_transform(request, monkeypatch):
    for name, value in SPECTRAL_TRANSFORMS[request.param].items():
        monkeypatch.setattr(spectral, name, value)
    used = []
    original = spectral._spectral_transform
    monkeypatch.setattr(
        spectral, "_spectral_transform", lambda matrix: used.append(original(matrix)) or used[-1]
    )
    yield request.param
    expected = "solve" if request.param == "shift-invert" else "filtered"
    assert used and all(transform.__name__ == expected for transform in used)


def test_laplacian_spectrum_sparse_path_matches_scipy(spectral_transform):
    features, _ = blob_heatmaps([(4, 4), (11, 11)], n_per_group=300)
    affinity = knn_affinity(features.reshape(len(features), -1), n_neighbors=10)
    spectrum = laplacian_spectrum(affinity, n_eigenvalues=6, seed=0)  # components > 256: Lanczos
    assert_matches_dense_laplacian(affinity, spectrum)


def test_spectral_transforms_agree_on_a_crowded_spectrum(monkeypatch):
    # 3000 samples on a noisy 2-D sheet: small eigenvalues as close as 6e-5 (the case shift-invert is for)
    rng = np.random.default_rng(6)
    features = np.hstack([rng.uniform(0.0, 1.0, (3000, 2)), rng.normal(0.0, 0.01, (3000, 6))])
    affinity = knn_affinity(features, n_neighbors=10)
    shift_invert = laplacian_spectrum(affinity, n_eigenvalues=25, seed=0)
    monkeypatch.setattr(spectral, "_ENVELOPE_FRACTION", 0.0)
    polynomial = laplacian_spectrum(affinity, n_eigenvalues=25, seed=0)
    assert np.diff(shift_invert.eigenvalues).min() < 1e-4
    np.testing.assert_allclose(shift_invert.eigenvalues, polynomial.eigenvalues, atol=1e-12)
    np.testing.assert_allclose(shift_invert.eigenvectors, polynomial.eigenvectors, atol=1e-8)  # signs fixed
    lap = laplacian(affinity, normed=True)
    residual = lap @ shift_invert.eigenvectors - shift_invert.eigenvectors * shift_invert.eigenvalues
    assert np.abs(residual).max() < 1e-8


def test_laplacian_spectrum_several_components(spectral_transform):
    # three disconnected cliques of 6 and a graph of 300 nodes: four exact zero eigenvalues
    cliques = sp.block_diag([np.ones((6, 6)) - np.eye(6)] * 3)
    ring = sp.diags([np.ones(299), np.ones(299)], [1, -1]) + sp.diags(
        [1.0, 1.0], [299, -299], shape=(300, 300)
    )
    affinity = sp.block_diag([cliques, ring]).tocsr()
    spectrum = laplacian_spectrum(affinity, n_eigenvalues=7, seed=0)
    assert_matches_dense_laplacian(affinity, spectrum)
    assert spectrum.n_graph_components == 4
    assert spectrum.trivial.tolist() == [True] * 4 + [False] * 3
    np.testing.assert_array_equal(spectrum.eigenvalues[:4], 0.0)
    embedding = spectral_embedding(spectrum, 4)
    labels = cluster_embedding(embedding, "kmeans", 4, seed=0)
    assert adjusted_rand_score(spectrum.graph_components, labels) == 1.0


def test_laplacian_spectrum_rejects_bad_input():
    affinity = knn_affinity(np.random.default_rng(5).normal(size=(20, 2)), n_neighbors=3)
    with pytest.raises(ValueError, match="n_eigenvalues"):
        laplacian_spectrum(affinity, n_eigenvalues=21)
    with pytest.raises(ValueError, match="symmetric"):
        laplacian_spectrum(sp.csr_matrix(np.triu(np.ones((4, 4)), 1)), n_eigenvalues=2)


def test_eigengap_hand_computed():
    result = eigengap(np.array([0.0, 0.01, 0.02, 0.5, 0.55]))
    assert result.n_clusters == 3
    assert result.gap == pytest.approx(0.48)
    assert result.score == pytest.approx(0.48 / 0.1375)
    np.testing.assert_allclose(result.gaps, [0.01, 0.01, 0.48, 0.05])
    assert eigengap(np.array([0.0, 0.01, 0.02, 0.5, 0.55]), max_clusters=2).n_clusters == 1
    with pytest.raises(ValueError, match="ascending"):
        eigengap(np.array([0.0, 0.5, 0.2]))


# ---------------------------------------------------------------- planted structure end to end


@pytest.mark.parametrize("centres", [[(4, 4), (11, 11)], [(4, 4), (4, 11), (11, 8)]])
def test_planted_groups_are_recovered(centres):
    heatmaps, groups = blob_heatmaps(centres)
    spray = SpRAy(size=8, pca_components=None, seed=0).fit(heatmaps)
    assert spray.eigengap_.n_clusters == len(centres)
    assert spray.eigengap_.score > 2
    assert adjusted_rand_score(groups, spray.labels_) > 0.95
    # same affinity, scikit-learn's spectral clustering: the same partition
    reference = SpectralClustering(len(centres), affinity="precomputed", random_state=0).fit_predict(
        spray.affinity_
    )
    assert adjusted_rand_score(reference, spray.labels_) > 0.95


@pytest.mark.parametrize(
    ("method", "params"),
    [("agglomerative", None), ("dbscan", {"eps": 0.2}), ("hdbscan", {"min_cluster_size": 10})],
)
def test_other_clustering_methods_recover_planted_groups(method, params):
    heatmaps, groups = blob_heatmaps([(4, 4), (4, 11), (11, 8)])
    spray = SpRAy(size=8, clustering=method, clustering_params=params, seed=0).fit(heatmaps)
    assert adjusted_rand_score(groups, spray.labels_) > 0.95


def test_cluster_embedding_argument_errors():
    embedding = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(ValueError, match="finds the number of clusters itself"):
        cluster_embedding(embedding, "dbscan", n_clusters=3)
    with pytest.raises(ValueError, match="needs n_clusters"):
        cluster_embedding(embedding, "kmeans")
    with pytest.raises(ValueError, match="method"):
        cluster_embedding(embedding, "spectral", 2)


def test_results_are_reproducible_with_a_seed():
    heatmaps, _ = blob_heatmaps([(4, 4), (4, 11), (11, 8)], n_per_group=150)  # 450 > 256: Lanczos
    first = SpRAy(size=8, n_clusters=5, seed=7).fit(heatmaps)
    second = SpRAy(size=8, n_clusters=5, seed=7).fit(torch.from_numpy(heatmaps))
    np.testing.assert_array_equal(first.labels_, second.labels_)
    np.testing.assert_array_equal(first.spectrum_.eigenvectors, second.spectrum_.eigenvectors)
    np.testing.assert_array_equal(first.eigenvalues_, second.eigenvalues_)
    for name in ("scores", "null_mean", "p_values", "contrast", "flagged"):  # the artefact test is seeded too
        first_test, second_test = first.clusters_.artefact_test, second.clusters_.artefact_test
        np.testing.assert_array_equal(getattr(first_test, name), getattr(second_test, name))


def test_pca_neighbour_space_gives_same_partition_as_exact():
    heatmaps, groups = blob_heatmaps([(4, 4), (4, 11), (11, 8)])
    exact = SpRAy(size=16, pca_components=None, n_clusters=3, seed=0).fit(heatmaps)
    reduced = SpRAy(size=16, pca_components=10, n_clusters=3, seed=0).fit(heatmaps)
    assert adjusted_rand_score(exact.labels_, reduced.labels_) == 1.0
    assert adjusted_rand_score(groups, reduced.labels_) > 0.95


@pytest.mark.parametrize(
    ("heatmaps", "message"),
    [
        (np.zeros((0, 16, 16)), "empty"),
        (np.random.default_rng(0).random((5, 32, 32)), "n_neighbors=10 needs more than 10 samples"),
        (np.full((30, 16, 16), np.nan), "NaN"),
    ],
)
def test_pipeline_bad_input(heatmaps, message):
    with pytest.raises(ValueError, match=message):
        SpRAy().fit(heatmaps)


def test_a_class_of_fewer_heatmaps_than_eigenvalues_gets_one_eigenvalue_per_heatmap():
    heatmaps, groups = blob_heatmaps([(4, 4), (11, 11)], n_per_group=10)  # 20 < the default 32 eigenpairs
    spray = SpRAy(size=8, seed=0).fit(heatmaps)
    assert spray.eigenvalues_.shape == (20,)
    assert adjusted_rand_score(groups, spray.labels_) == 1.0


@pytest.mark.parametrize("n_clusters", [0, 21, 500])
def test_more_clusters_than_eigenvectors_is_refused_by_its_own_name(n_clusters):
    heatmaps, _ = blob_heatmaps([(4, 4), (11, 11)], n_per_group=10)
    with pytest.raises(ValueError, match=rf"n_clusters must be an int in \[1, 20\].*got {n_clusters}$"):
        SpRAy(size=8, n_clusters=n_clusters).fit(heatmaps)


def test_pipeline_rejects_misaligned_labels():
    heatmaps, groups = blob_heatmaps([(4, 4), (11, 11)])
    with pytest.raises(ValueError, match=r"labels must have shape \(80,\)"):
        SpRAy(size=8).fit(heatmaps, labels=groups[:-1], predictions=groups)


# ---------------------------------------------------------------- Clever Hans


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clever_hans_tag_cluster(seed):
    heatmaps, tagged = clever_hans_heatmaps(seed)
    spray = SpRAy(size=16, seed=seed).fit(heatmaps, groups=tagged)
    assert spray.eigengap_.n_clusters >= 2
    clusters = spray.clusters_
    tag_rows = np.flatnonzero(clusters.majority_group)
    assert len(tag_rows) == 1
    tag_row = tag_rows[0]
    members = spray.labels_ == clusters.cluster_ids[tag_row]
    assert clusters.group_purity[tag_row] >= 0.9
    assert tagged[members].sum() >= 0.9 * tagged.sum()  # and it holds (nearly) all tagged images
    assert np.argmax(clusters.artefact_scores) == tag_row
    others = np.delete(clusters.artefact_scores, tag_row)
    assert clusters.artefact_scores[tag_row] > 1.5 * others.max()
    # only the tag cluster stands out, although some ring clusters (small rings) have lifts above 2 too
    test = clusters.artefact_test
    np.testing.assert_array_equal(clusters.flagged, np.arange(len(clusters.cluster_ids)) == tag_row)
    assert test.lift[tag_row] > 4 and test.contrast[tag_row] > 2.5
    assert test.p_values[tag_row] == len(clusters.cluster_ids) / 1000  # no random group reaches it
    assert np.delete(test.contrast, tag_row).max() < 1.3
    # the prototype's relevance sits in the corner (2x2 of 256 pooled pixels; half the mass is noise)
    corner = clusters.prototypes[tag_row][-3:-1, 1:3].clip(min=0).sum()
    assert corner / clusters.prototypes[tag_row].clip(min=0).sum() > 0.4


# ---------------------------------------------------------------- does a cluster stand out


def test_artefact_test_against_the_exact_permutation_distribution():
    """8 heatmaps, clusters of 4: the C(8, 4) = 70 possible groups give the exact p-value and null mean."""
    rng = np.random.default_rng(3)
    features = rng.uniform(0.0, 1.0, (8, 2, 2)) ** 3
    labels = np.array([0, 1, 1, 0, 1, 0, 0, 1])
    features[labels == 1, 0, 0] += 0.5  # cluster 1 leans on pixel 0: only 1 of the 70 groups scores as high
    result = artefact_test(features, labels, n_permutations=20_000, top_fraction=0.25, seed=0)
    assert result.n_permutations == 20_000
    every = np.array(
        [artefact_score(features[list(group)], 0.25).score for group in combinations(range(8), 4)]
    )
    distances = cdist(features.reshape(8, -1), features.reshape(8, -1))
    local = np.array([artefact_score(features[np.argsort(distances[i])[:4]], 0.25).score for i in range(8)])
    for row, cluster in enumerate([0, 1]):
        members = labels == cluster
        score = artefact_score(features[members], 0.25).score
        assert result.scores[row] == pytest.approx(score, rel=1e-12)
        assert result.null_mean[row] == pytest.approx(every.mean(), rel=0.01)
        assert result.lift[row] == pytest.approx(score / every.mean(), rel=0.01)
        exact = min(1.0, 2 * np.mean(every >= score - 1e-12))  # Bonferroni for 2 clusters
        assert result.p_values[row] == pytest.approx(exact, abs=0.015)
        assert result.contrast[row] == pytest.approx(
            local[members].mean() / local[~members].mean(), rel=1e-12
        )


def test_artefact_test_p_values_are_calibrated_under_the_null():
    """Random labels on i.i.d. heatmaps: a corrected p-value < 0.2 (raw p <= 0.09 with 99 permutations)
    comes with probability 0.09, and without the effect sizes a class is flagged at most at the level."""
    rng = np.random.default_rng(0)
    below, flagged, flagged_defaults = [], [], 0
    for draw in range(300):
        features = rng.exponential(1.0, (40, 4, 4))
        labels = rng.permutation(np.repeat([0, 1], [15, 25]))
        plain = artefact_test(
            features, labels, n_permutations=99, level=0.1, min_lift=1, min_contrast=1, seed=draw
        )
        below.extend(plain.p_values < 0.2)
        flagged.append(plain.flagged.any())
        if draw < 50:  # the default thresholds (and 999 permutations)
            flagged_defaults += artefact_test(features, labels, seed=draw).flagged.sum()
    assert 0.06 < np.mean(below) < 0.13
    assert 0.04 < np.mean(flagged) < 0.14  # family-wise level 0.1 (Bonferroni is conservative)
    assert flagged_defaults == 0


def test_no_cluster_stands_out_where_the_object_moves():
    """Blobs at random places: SpRAy groups them by place, every cluster is far more concentrated than random
    groups of the class (which mix places), but no cluster's neighbourhoods are."""
    for seed in (0, 1):
        spray = SpRAy(size=16, seed=seed).fit(moving_blob_heatmaps(seed=seed))
        test = spray.clusters_.artefact_test
        assert len(test.cluster_ids) >= 3
        assert (test.lift > 2).all() and (test.p_values < 0.01).all()
        assert test.contrast.max() < 1.3
        assert not test.flagged.any() and test.strongest is None
        assert test.summary().startswith("no cluster stands out: the highest lift is cluster ")


def test_a_planted_tag_among_moving_objects_stands_out():
    rng = np.random.default_rng(5)
    heatmaps = moving_blob_heatmaps(seed=5)
    tagged = np.zeros(len(heatmaps), dtype=bool)
    tagged[rng.choice(len(heatmaps), 30, replace=False)] = True
    heatmaps[tagged] = np.abs(rng.normal(0.0, 0.02, (30, 32, 32)))
    heatmaps[tagged, 2:6, 2:6] += rng.uniform(0.8, 1.0, (30, 4, 4))
    spray = SpRAy(size=16, seed=0).fit(heatmaps, groups=tagged)
    clusters = spray.clusters_
    (flagged,) = np.flatnonzero(clusters.flagged)
    members = spray.labels_ == clusters.cluster_ids[flagged]
    np.testing.assert_array_equal(members, tagged)
    assert clusters.artefact_test.strongest == clusters.cluster_ids[flagged]
    summary = clusters.artefact_test.summary()
    assert summary.startswith(f"cluster {clusters.cluster_ids[flagged]} stands out: artefact score ")
    assert f"Bonferroni-corrected for {len(clusters.cluster_ids)} clusters" in summary


def test_clusters_of_noise_are_significant_but_do_not_stand_out():
    """Clustering alone makes clusters of pure noise more concentrated than random groups (p < 0.01 here):
    why a flag needs the lift and the contrast as well."""
    heatmaps = np.abs(np.random.default_rng(0).normal(0.0, 1.0, (300, 16, 16)))
    spray = SpRAy(size=8, n_clusters=4, seed=0).fit(heatmaps)
    test = spray.clusters_.artefact_test
    assert (test.p_values < 0.01).any()
    assert test.lift.max() < 1.5 and test.contrast.max() < 1.2
    assert not test.flagged.any()


def test_artefact_test_single_cluster_noise_and_permutation_count():
    features = np.random.default_rng(0).exponential(1.0, (30, 4, 4))
    whole = artefact_test(features, np.zeros(30, dtype=int), seed=0)
    assert (
        whole.p_values.tolist() == [1.0] and whole.lift.tolist() == [1.0] and whole.contrast.tolist() == [1.0]
    )
    assert whole.summary() == "no cluster stands out: there is a single cluster"
    noise = artefact_test(features, np.full(30, -1), seed=0)
    assert len(noise.cluster_ids) == 0 and noise.summary() == "no cluster to test"
    # six clusters at level 0.01 need B + 1 >= 2 * 6 / 0.01 permutations for a p-value below the level
    six = artefact_test(features, np.arange(30) % 6, seed=0)
    assert six.n_permutations == 1199
    assert six.p_values.min() >= 6 / 1200
    with pytest.raises(ValueError, match="no cluster 9; the tested clusters are"):
        six.describe(9)


def test_artefact_test_large_clusters_are_subsampled():
    features = np.random.default_rng(0).exponential(1.0, (300, 4, 4))
    labels = np.arange(300) % 2
    small = artefact_test(features, labels, max_group=20, max_centres=50, seed=0)
    full = artefact_test(features, labels, seed=0)
    # a random 20 of 150 members against random groups of 20: both scores rise (the prototype is noisier)
    assert (small.null_mean > full.null_mean).all()
    assert (np.abs(small.lift - 1) < 0.2).all() and not small.flagged.any()


def test_neighbourhoods_start_with_the_centre_also_for_duplicates():
    space = np.array([[0.0], [0.0], [1.0], [3.0]])
    found = _neighbourhoods(space, np.array([0, 1, 3]), 2)
    np.testing.assert_array_equal(found, [[0, 1], [1, 0], [3, 2]])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"cluster_labels": np.zeros(3)}, r"cluster_labels must have shape \(10,\)"),
        ({"space": np.zeros((9, 2))}, r"space must have shape \(10, d\)"),
        ({"n_permutations": 0}, "n_permutations must be an int >= 1"),
        ({"max_group": 2.5}, "max_group must be an int >= 1"),
        ({"level": 1.0}, r"level must be in \(0, 1\)"),
        ({"min_lift": 0.5}, "min_lift must be at least 1"),
        ({"min_contrast": float("nan")}, "min_contrast must be at least 1"),
        ({"top_fraction": 0.0}, "top_fraction must be in"),
    ],
)
def test_artefact_test_bad_arguments(arguments, message):
    call = {"features": np.ones((10, 3, 3)), "cluster_labels": np.zeros(10, dtype=int), **arguments}
    with pytest.raises(ValueError, match=message):
        artefact_test(**call)


# ---------------------------------------------------------------- statistics


def test_artefact_score_hand_computed():
    # one member has its mass on pixel 0, the other on pixel 1; q = 1 pixel out of 4
    members = np.array([[[1.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [0.0, 0.0]]])
    result = artefact_score(members, top_fraction=0.25)
    assert result.region.tolist() == [0]  # tie broken by the lower index
    assert result.concentration == pytest.approx(0.5)
    assert result.consistency == pytest.approx(0.5)
    assert result.score == pytest.approx(0.25)
    fixed = artefact_score(np.repeat(members[:1], 5, axis=0) + [[[0.0, 0.0], [0.0, -3.0]]], 0.25)
    assert fixed.score == pytest.approx(1.0)  # negative relevance is ignored
    uniform = artefact_score(np.ones((3, 10, 10)), top_fraction=0.05)
    assert uniform.score == pytest.approx(0.05**2)
    assert artefact_score(-np.ones((2, 3, 3))).score == 0.0


def test_cluster_statistics_hand_computed():
    features = np.arange(6 * 2 * 2, dtype=np.float64).reshape(6, 2, 2)
    cluster_labels = np.array([1, 0, 1, -1, 1, 0])
    labels = np.array([0, 1, 1, 0, 0, 1])
    predictions = np.array([0, 0, 1, 0, 1, 1])
    groups = np.array(["a", "b", "a", "a", "b", "b"])
    stats = cluster_statistics(features, cluster_labels, labels, predictions, groups, n_nearest=3)
    assert stats.cluster_ids.tolist() == [0, 1]
    assert stats.sizes.tolist() == [2, 3]
    np.testing.assert_allclose(stats.prototypes[0], features[[1, 5]].mean(axis=0))
    np.testing.assert_allclose(stats.prototypes[1], features[[0, 2, 4]].mean(axis=0))
    assert stats.nearest[1].tolist()[0] == 2  # sample 2 is the mean of samples 0, 2, 4
    assert stats.nearest[0].tolist() == [1, 5, -1]  # equidistant: lower index first; padded
    np.testing.assert_allclose(stats.accuracy, [0.5, 2 / 3])
    assert stats.majority_group.tolist() == ["b", "a"]
    np.testing.assert_allclose(stats.group_purity, [1.0, 2 / 3])
    with pytest.raises(ValueError, match="both labels and predictions"):
        cluster_statistics(features, cluster_labels, labels=labels)


# ---------------------------------------------------------------- 2-D views


def test_embed_2d_tsne_and_errors():
    heatmaps, groups = blob_heatmaps([(4, 4), (11, 11)], n_per_group=25)
    spray = SpRAy(size=8, n_eigenvalues=8, seed=0).fit(heatmaps)
    view = spray.embed_2d("tsne", perplexity=10)
    assert view.shape == (50, 2) and np.isfinite(view).all()
    np.testing.assert_array_equal(view, spray.embed_2d("tsne", perplexity=10))
    with pytest.raises(ValueError, match="method"):
        embed_2d(view, "pca")
    with pytest.raises(RuntimeError, match="not fitted"):
        SpRAy().embed_2d()


def test_umap_missing_names_the_package():
    try:
        import umap  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install umap-learn"):
            embed_2d(np.random.default_rng(0).normal(size=(20, 3)), "umap")
    else:
        pytest.skip("umap-learn is installed")


def test_the_former_name_random_state_still_works_with_a_warning():
    with pytest.warns(DeprecationWarning, match="'random_state' is now called 'seed'"):
        spray = SpRAy(size=8, random_state=3)
    assert spray.seed == 3
    with pytest.warns(DeprecationWarning, match="SpRAy.seed"):
        assert spray.random_state == 3
    with pytest.raises(TypeError, match="both 'seed' and its former name 'random_state'"):
        SpRAy(seed=1, random_state=2)
    affinity = knn_affinity(np.random.default_rng(0).normal(size=(40, 4)), n_neighbors=5)
    with pytest.warns(DeprecationWarning):
        old = laplacian_spectrum(affinity, n_eigenvalues=4, random_state=0)
    new = laplacian_spectrum(affinity, n_eigenvalues=4, seed=0)
    np.testing.assert_array_equal(old.eigenvalues, new.eigenvalues)
