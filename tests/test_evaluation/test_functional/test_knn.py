"""Chunked k-NN against a brute-force computation on the full similarity matrix."""
import numpy as np
import pytest
import torch

from medtrans.evaluation.functional import (
    IGNORE_TARGET,
    KNNClassifier,
    cohen_kappa,
    knn_neighbours,
    knn_scores,
    per_class_roc_auc,
)

N, M, C = 150, 23, 12
# (query_chunk_size, train_chunk_size): one column per block, ragged blocks, one block.
CHUNKS = [(1, 1), (7, 13), (1024, 65536)]


def brute_force(train, targets, query, k, temperature, num_classes=None):
    """Neighbour indices and class scores from the full M x N matrix, in float64 numpy.

    Ranking: similarity descending, then train index ascending. Weights exp(s / T) without
    any shift. Multi-label: per class, the weighted share of positives among the neighbours
    whose entry is not ignored, else the positive rate of the scored train entries.
    """
    train = np.asarray(train, np.float64)
    query = np.asarray(query, np.float64)
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    query = query / np.linalg.norm(query, axis=1, keepdims=True)
    sims = query @ train.T
    k = min(k, len(train))
    neighbours = np.stack([np.lexsort((np.arange(len(train)), -row))[:k] for row in sims])
    weights = np.exp(np.take_along_axis(sims, neighbours, axis=1) / temperature)
    targets = np.asarray(targets)
    if targets.ndim == 1:
        scores = np.zeros((len(query), num_classes))
        for row in range(len(query)):
            np.add.at(scores[row], targets[neighbours[row]], weights[row])
        return neighbours, scores / scores.sum(axis=1, keepdims=True)
    prior = (targets == 1).sum(0) / (targets != IGNORE_TARGET).sum(0)
    scores = np.empty((len(query), targets.shape[1]))
    for row in range(len(query)):
        for c in range(targets.shape[1]):
            entries = targets[neighbours[row], c]
            scored = entries != IGNORE_TARGET
            total = weights[row][scored].sum()
            scores[row, c] = (weights[row][entries == 1].sum() / total if scored.any() else
                              prior[c])
    return neighbours, scores


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    train = rng.randn(N, C)
    query = rng.randn(M, C)
    labels = rng.randint(0, 4, N)  # class 4 of 5 never occurs in the train set
    multi = rng.choice([1, 0, IGNORE_TARGET], size=(N, 6), p=[0.3, 0.4, 0.3])
    return train, query, labels, multi


@pytest.mark.parametrize('k', [1, 5, 200])
@pytest.mark.parametrize('temperature', [0.07, 0.5])
@pytest.mark.parametrize('chunks', CHUNKS)
def test_single_label_equals_brute_force(data, k, temperature, chunks):
    train, query, labels, _ = data
    expected_neighbours, expected = brute_force(train, labels, query, k, temperature, 5)
    scores = knn_scores(torch.tensor(train), torch.tensor(labels), torch.tensor(query), k=k,
                        temperature=temperature, num_classes=5, query_chunk_size=chunks[0],
                        train_chunk_size=chunks[1])
    _, neighbours = knn_neighbours(torch.tensor(train), torch.tensor(query), k,
                                   query_chunk_size=chunks[0], train_chunk_size=chunks[1])
    np.testing.assert_array_equal(neighbours.numpy(), expected_neighbours)
    assert scores.dtype == torch.float64
    np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-12, atol=1e-15)
    assert (scores[:, 4] == 0).all()  # the class absent from the train set


@pytest.mark.parametrize('k', [1, 5, 200])
@pytest.mark.parametrize('temperature', [0.07, 0.5])
@pytest.mark.parametrize('chunks', CHUNKS)
def test_multi_label_with_ignored_entries_equals_brute_force(data, k, temperature, chunks):
    train, query, _, targets = data
    _, expected = brute_force(train, targets, query, k, temperature)
    scores = knn_scores(train, targets, query, k=k, temperature=temperature,
                        query_chunk_size=chunks[0], train_chunk_size=chunks[1])
    np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-12, atol=1e-15)


def test_multi_label_without_scored_neighbour_falls_back_to_prior(data):
    train, query, _, targets = data
    targets = targets.copy()
    targets[:, 0] = IGNORE_TARGET
    targets[:3, 0] = [1, 0, 0]  # class 0 is scored for three train samples only
    neighbours, expected = brute_force(train, targets, query, 1, 0.07)
    fallback = targets[neighbours[:, 0], 0] == IGNORE_TARGET
    assert fallback.any()
    scores = knn_scores(train, targets, query, k=1).numpy()
    np.testing.assert_allclose(scores, expected, rtol=1e-12)
    np.testing.assert_array_equal(scores[fallback, 0], 1 / 3)


def test_ordinal_kappa_of_knn_scores_equals_brute_force(data):
    train, query, labels, _ = data
    _, expected = brute_force(train, labels, query, 20, 0.07, 5)
    scores = knn_scores(train, labels, query, k=20, num_classes=5)
    query_labels = np.arange(M) % 5
    assert cohen_kappa(scores, query_labels) == cohen_kappa(expected, query_labels)


def test_auc_of_multi_label_scores_equals_brute_force(data):
    train, query, _, targets = data
    _, expected = brute_force(train, targets, query, 10, 0.07)
    scores = knn_scores(train, targets, query, k=10)
    query_targets = np.random.RandomState(1).randint(0, 2, size=(M, 6))
    np.testing.assert_allclose(per_class_roc_auc(scores, query_targets),
                               per_class_roc_auc(expected, query_targets), rtol=1e-12)


@pytest.mark.parametrize('chunks', CHUNKS + [(3, 64)])
@pytest.mark.parametrize('k', [3, 40, 64, 300])
def test_ties_go_to_the_lower_train_index(chunks, k):
    # +-1 vectors of 16 entries have norm 4: normalised entries +-0.25 and every dot product
    # exact in float32, so similarities take 17 values and tie massively.
    rng = np.random.RandomState(2)
    train = np.sign(rng.randn(300, 16)).astype(np.float32)
    train[150:] = train[:150]  # exact duplicates as well
    query = np.sign(rng.randn(9, 16)).astype(np.float32)
    labels = rng.randint(0, 3, 300)
    expected_neighbours, expected = brute_force(train, labels, query, k, 0.1, 3)
    for dtype in (np.float32, np.float64):
        values, neighbours = knn_neighbours(train.astype(dtype), query.astype(dtype), k,
                                            query_chunk_size=chunks[0],
                                            train_chunk_size=chunks[1])
        np.testing.assert_array_equal(neighbours.numpy(), expected_neighbours)
    scores = knn_scores(train.astype(np.float64), labels, query.astype(np.float64), k=k,
                        temperature=0.1, num_classes=3, query_chunk_size=chunks[0],
                        train_chunk_size=chunks[1])
    np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-12)


def test_k_larger_than_train_set_uses_every_sample(data):
    train, query, labels, _ = data
    classifier = KNNClassifier(train, labels, num_classes=5, k=1000)
    assert classifier.k == N
    _, expected = brute_force(train, labels, query, N, 0.07, 5)
    np.testing.assert_allclose(classifier.scores(query).numpy(), expected, rtol=1e-12)
    assert classifier.neighbours(query)[1].shape == (M, N)


def test_one_query_and_one_train_sample(data):
    train, query, labels, targets = data
    _, expected = brute_force(train, labels, query[:1], 200, 0.07, 5)
    np.testing.assert_allclose(knn_scores(train, labels, query[:1], num_classes=5).numpy(),
                               expected, rtol=1e-12)
    single = knn_scores(train[:1], labels[:1], query, num_classes=5).numpy()
    np.testing.assert_array_equal(single, np.eye(5)[np.full(M, labels[0])])
    assert knn_scores(train, targets, query[:0]).shape == (0, 6)


def test_float32_and_bfloat16_inputs(data):
    train, query, labels, _ = data
    _, expected = brute_force(train, labels, query, 10, 0.07, 5)
    scores = knn_scores(train.astype(np.float32), labels, query.astype(np.float32), k=10,
                        num_classes=5)
    assert scores.dtype == torch.float32
    np.testing.assert_allclose(scores.numpy(), expected, rtol=2e-5, atol=1e-7)
    # Mixed-precision embeddings are compared in float32: as float32 copies of them would be.
    half_train = torch.tensor(train, dtype=torch.bfloat16)
    half_query = torch.tensor(query, dtype=torch.bfloat16)
    np.testing.assert_array_equal(
        knn_scores(half_train, labels, half_query, k=10, num_classes=5).numpy(),
        knn_scores(half_train.float(), labels, half_query.float(), k=10, num_classes=5).numpy())


def test_small_temperature_does_not_overflow(data):
    train, query, labels, targets = data
    _, expected = brute_force(train, labels, query, 50, 0.005, 5)
    scores = knn_scores(train, labels, query, k=50, temperature=0.005, num_classes=5)
    np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-9, atol=1e-300)
    multi = knn_scores(train.astype(np.float32), targets, query.astype(np.float32), k=50,
                       temperature=0.001)
    assert torch.isfinite(multi).all()


@pytest.mark.parametrize('kwargs, message', [
    (dict(k=0), 'k must be a positive integer'),
    (dict(temperature=0.0), 'temperature must be a positive number'),
    (dict(num_classes=None), 'num_classes is required'),
    (dict(num_classes=3), r'train_targets hold \[3\]; expected integer class indices'),
    (dict(query_chunk_size=0), 'query_chunk_size must be a positive integer'),
])
def test_bad_arguments(data, kwargs, message):
    train, query, labels, _ = data
    args = dict(num_classes=5)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        knn_scores(train, labels, query, **args)


def test_bad_inputs(data):
    train, query, labels, targets = data
    bad = train.copy()
    bad[7, 2] = np.nan
    with pytest.raises(ValueError, match=r'train_features hold NaN or infinite values \(rows '
                                         r'\[7\]\)'):
        knn_scores(bad, labels, query, num_classes=5)
    bad = query.copy()
    bad[11, 0] = np.inf
    with pytest.raises(ValueError, match=r'query_features hold NaN .* \(rows \[11\]\)'):
        knn_scores(train, labels, bad, num_classes=5, query_chunk_size=4)
    with pytest.raises(ValueError, match='query_features have 3 channels'):
        knn_scores(train, labels, query[:, :3], num_classes=5)
    with pytest.raises(ValueError, match=r'train_targets must have shape \(150,\)'):
        knn_scores(train, labels[:-1], query, num_classes=5)
    odd = targets.copy()
    odd[0, 0] = 2
    with pytest.raises(ValueError, match=r'train_targets hold \[2\]; expected 1, 0 or -1'):
        knn_scores(train, odd, query)
    unscored = targets.copy()
    unscored[:, 4] = IGNORE_TARGET
    with pytest.raises(ValueError, match=r'Classes \[4\] have no scored entry'):
        knn_scores(train, unscored, query)
