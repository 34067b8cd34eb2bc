"""Weighted k-nearest-neighbour classification of frozen embeddings, chunked.

The k-NN protocol of DINO (Caron et al. 2021, https://arxiv.org/abs/2104.14294), which the
study uses for its Table 3, extended to multi-label targets with ignored entries:

1. The train (memory) and query embeddings are L2-normalised; the similarity of a query and a
   train sample is the cosine of their embeddings, ``s = q . t`` (an all-zero embedding stays
   zero: similarity 0 to everything).
2. Each query keeps its ``k`` most similar train samples. ``k`` larger than the train set is
   clipped to its size: every train sample votes.
3. Neighbour ``n`` votes with weight ``w_n = exp(s_n / T)``.

Class scores of a query, from its neighbours ``n = 1..k``:

* **single-label** (targets: class indices ``y_n``)::

      score_c = sum_{n: y_n = c} w_n / sum_n w_n

  The scores sum to 1; a class no neighbour has scores 0.
* **multi-label** (targets ``y_nc`` in {1 positive, 0 negative, -1 ignored}): per class, the
  weighted share of positives among the neighbours whose entry for that class is not
  ignored::

      score_c = sum_{n: y_nc = 1} w_n / sum_{n: y_nc != -1} w_n

  If none of the ``k`` neighbours has a scored entry for class ``c``, the neighbourhood says
  nothing about it and ``score_c`` is the class's positive rate over the scored entries of the
  whole train set (its prior); a class without any scored train entry cannot be scored, which
  is an error.

The exponentials are computed as ``exp((s_n - m) / T)``, ``m`` the largest similarity among
the neighbours that enter the ratio (the top one; per class for multi-label targets). The
factor ``exp(-m / T)`` cancels in each ratio, so the scores are those of the formulas above,
without overflow for small ``T`` nor underflow of a whole denominator.

Ties: neighbours are ranked by similarity, then by train index, so that among train samples
with equal similarity the lower index is taken first: the rule of a stable sort of the full
similarity matrix, whatever the chunking or device (``topk`` alone would pick among equal
values arbitrarily). Similarities computed by differently shaped matrix products may differ in
their last bit, as any two matrix products may.

Memory: the similarity matrix is computed by blocks of ``query_chunk_size`` queries x
``train_chunk_size`` train samples (float32: 4 bytes each; 256 MiB at the defaults) and
reduced to each query's ``k`` best before the next block, so that the ``M x N`` matrix is
never formed. Besides the inputs, the train embeddings are held once more (normalised).

Precision: embeddings are compared in float32 (float64 train embeddings stay float64; float16
and bfloat16 ones, from mixed precision, are promoted; queries take the train embeddings'
dtype). Everything stays on the embeddings' device; a chunk of queries costs one host
synchronisation (whether its embeddings are finite and whether a tie at a block's ``k``-th
place needs the rows sorted whole, which is rare).
"""
from typing import Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from .classification import IGNORE_TARGET

__all__ = ['KNNIndex', 'KNNClassifier', 'knn_scores', 'knn_neighbours']

TensorLike = Union[torch.Tensor, np.ndarray]

DEFAULT_K = 200
DEFAULT_TEMPERATURE = 0.07
DEFAULT_QUERY_CHUNK_SIZE = 1024
DEFAULT_TRAIN_CHUNK_SIZE = 65536


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f'{name} must be a positive integer, got {value!r}.')
    return int(value)


def _features(value: TensorLike, name: str) -> torch.Tensor:
    features = torch.as_tensor(value)
    if features.dim() != 2 or features.shape[1] == 0:
        raise ValueError(f'{name} must have shape (num_samples, C) with C >= 1, got '
                         f'{tuple(features.shape)}.')
    if not features.is_floating_point():
        raise ValueError(f'{name} must be floating point, got {features.dtype}.')
    if features.dtype not in (torch.float32, torch.float64):
        features = features.float()
    return features


def _nonfinite_rows(features: torch.Tensor) -> torch.Tensor:
    return ~torch.isfinite(features).all(dim=1)


def _chunk_candidates(sim: torch.Tensor, k: int,
                      exact: bool) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``k`` best columns of each row of a similarity block.

    Returns their similarities and column indices, ordered by similarity (descending) then
    column index (ascending), and whether the row is ambiguous: ``topk`` picks among equal
    similarities arbitrarily, so a row whose ``k``-th and ``k+1``-th values are equal may have
    left out a lower column of the same value. ``exact=True`` sorts whole rows instead (used
    only for such rows), which is never ambiguous.
    """
    rows, cols = sim.shape
    if exact or cols <= k:
        values, columns = sim.sort(dim=1, descending=True, stable=True)
        return values[:, :k], columns[:, :k], sim.new_zeros(rows, dtype=torch.bool)
    values, columns = sim.topk(k + 1, dim=1)
    ambiguous = values[:, k] == values[:, k - 1]
    # Within the chosen set, put equal similarities in column order.
    columns = columns[:, :k].sort(dim=1).values
    values, order = sim.gather(1, columns).sort(dim=1, descending=True, stable=True)
    return values, columns.gather(1, order), ambiguous


def _merge(best: Optional[Tuple[torch.Tensor, torch.Tensor]], values: torch.Tensor,
           indices: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Keep the ``k`` best of two ranked candidate lists; ``best`` holds lower indices.

    A stable sort of ``[best, new]`` by similarity keeps equal similarities in index order,
    since both lists are in (similarity, index) order and every index in ``best`` is lower.
    """
    if best is None:
        return values, indices
    values = torch.cat([best[0], values], dim=1)
    indices = torch.cat([best[1], indices], dim=1)
    values, order = values.sort(dim=1, descending=True, stable=True)
    return values[:, :k], indices.gather(1, order[:, :k])


def _scan(train: torch.Tensor, query: torch.Tensor, k: int, train_chunk_size: int,
          exact: bool) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``k`` nearest train samples of each query, one block of train samples at a time."""
    best = None
    ambiguous = query.new_zeros(len(query), dtype=torch.bool)
    for start in range(0, len(train), train_chunk_size):
        sim = query @ train[start:start + train_chunk_size].T
        values, columns, unsure = _chunk_candidates(sim, k, exact)
        best = _merge(best, values, columns + start, k)
        ambiguous |= unsure
    return best[0], best[1], ambiguous


class KNNIndex:
    """A fixed train (memory) set of embeddings, and the nearest of them to queries.

    The train embeddings are checked and normalised once, so that a caller querying batch by
    batch (the k-NN evaluation loops) pays for it once.

    Args:
        train_features (torch.Tensor | np.ndarray): Train embeddings, shape (N, C).
        k (int): Number of neighbours; clipped to N. Defaults to 200.
        train_chunk_size (int): Train samples per block of the similarity matrix. Defaults to
            65536.

    Raises:
        ValueError: Bad shapes or non-finite embeddings.
    """

    def __init__(self,
                 train_features: TensorLike,
                 k: int = DEFAULT_K,
                 train_chunk_size: int = DEFAULT_TRAIN_CHUNK_SIZE) -> None:
        features = _features(train_features, 'train_features')
        if len(features) == 0:
            raise ValueError('train_features is empty: k-NN needs at least one train sample.')
        self.k = min(_positive_int(k, 'k'), len(features))
        self.train_chunk_size = _positive_int(train_chunk_size, 'train_chunk_size')
        bad = _nonfinite_rows(features)
        if bool(bad.any()):
            rows = torch.nonzero(bad).flatten()[:10].tolist()
            raise ValueError(f'train_features hold NaN or infinite values (rows {rows}).')
        self.train = F.normalize(features, dim=1)

    def _query(self, query_features: TensorLike) -> torch.Tensor:
        query = _features(query_features, 'query_features')
        if query.shape[1] != self.train.shape[1]:
            raise ValueError(f'query_features have {query.shape[1]} channels but the train '
                             f'features {self.train.shape[1]}.')
        return query.to(device=self.train.device, dtype=self.train.dtype)

    def _chunks(self, query: torch.Tensor, query_chunk_size: int):
        """Yield ``(start, similarities, indices)`` of each chunk of checked queries."""
        step = _positive_int(query_chunk_size, 'query_chunk_size')
        for start in range(0, len(query), step):
            chunk = query[start:start + step]
            bad = _nonfinite_rows(chunk)
            normalised = F.normalize(chunk, dim=1)
            values, indices, ambiguous = _scan(self.train, normalised, self.k,
                                               self.train_chunk_size, exact=False)
            any_bad, any_ambiguous = torch.stack([bad.any(), ambiguous.any()]).tolist()
            if any_bad:
                rows = (torch.nonzero(bad).flatten()[:10] + start).tolist()
                raise ValueError(f'query_features hold NaN or infinite values (rows {rows}).')
            if any_ambiguous:
                # Rare (equal similarities at a block's k-th place): redo those rows exactly.
                rows = torch.nonzero(ambiguous).flatten()
                exact_values, exact_indices, _ = _scan(self.train, normalised[rows], self.k,
                                                       self.train_chunk_size, exact=True)
                values[rows], indices[rows] = exact_values, exact_indices
            yield start, values, indices

    def neighbours(
            self,
            query_features: TensorLike,
            query_chunk_size: int = DEFAULT_QUERY_CHUNK_SIZE
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The ``k`` nearest train samples of each query.

        Args:
            query_features (torch.Tensor | np.ndarray): Query embeddings, shape (M, C).
            query_chunk_size (int): Queries per block. Defaults to 1024.

        Returns:
            tuple[torch.Tensor, torch.Tensor]: Cosine similarities (M, k) and train indices
            (M, k, int64), by similarity then index, on the train features' device.
        """
        query = self._query(query_features)
        values = self.train.new_empty(len(query), self.k)
        indices = torch.empty(len(query), self.k, dtype=torch.long, device=self.train.device)
        for start, chunk_values, chunk_indices in self._chunks(query, query_chunk_size):
            values[start:start + len(chunk_values)] = chunk_values
            indices[start:start + len(chunk_values)] = chunk_indices
        return values, indices


class KNNClassifier(KNNIndex):
    """Weighted k-NN classification over a fixed train (memory) set: the formulas are in
    :mod:`medtrans.evaluation.functional.knn`.

    Args:
        train_features (torch.Tensor | np.ndarray): Train embeddings, shape (N, C).
        train_targets (torch.Tensor | np.ndarray): Single-label: class indices, shape (N,).
            Multi-label: shape (N, num_classes), entries 1, 0 or -1 (ignored). The label type
            follows this shape.
        num_classes (int, optional): Number of classes; required for single-label targets
            (a class absent from the train set still gets its score 0), checked against the
            width of multi-label ones. Defaults to None.
        k (int): Number of neighbours; clipped to N. Defaults to 200.
        temperature (float): ``T`` of the weights ``exp(s / T)``. Defaults to 0.07.
        train_chunk_size (int): Train samples per block of the similarity matrix. Defaults to
            65536.

    Raises:
        ValueError: Bad shapes, non-finite embeddings, targets out of range, or a multi-label
            class without any scored train entry.
    """

    def __init__(self,
                 train_features: TensorLike,
                 train_targets: TensorLike,
                 num_classes: Optional[int] = None,
                 k: int = DEFAULT_K,
                 temperature: float = DEFAULT_TEMPERATURE,
                 train_chunk_size: int = DEFAULT_TRAIN_CHUNK_SIZE) -> None:
        super().__init__(train_features, k, train_chunk_size)
        temperature = float(temperature)
        if not (temperature > 0 and np.isfinite(temperature)):
            raise ValueError(f'temperature must be a positive number, got {temperature!r}.')
        self.temperature = temperature
        num_train = len(self.train)
        targets = torch.as_tensor(train_targets, device=self.train.device)
        if targets.dim() not in (1, 2) or len(targets) != num_train:
            raise ValueError(f'train_targets must have shape ({num_train},) (class indices) or '
                             f'({num_train}, num_classes) (multi-label), got '
                             f'{tuple(targets.shape)}.')
        self.multi_label = targets.dim() == 2
        if self.multi_label:
            if num_classes is not None and num_classes != targets.shape[1]:
                raise ValueError(f'num_classes is {num_classes} but the multi-label '
                                 f'train_targets have {targets.shape[1]} columns.')
            self.num_classes = targets.shape[1]
            invalid = ~((targets == 1) | (targets == 0) | (targets == IGNORE_TARGET))
            expected = '1, 0 or -1 (ignored)'
        else:
            if num_classes is None:
                raise ValueError('num_classes is required with single-label train_targets '
                                 '(class indices): a class may be absent from the train set.')
            self.num_classes = _positive_int(num_classes, 'num_classes')
            invalid = (targets < 0) | (targets >= self.num_classes)
            if targets.is_floating_point():
                invalid |= targets != targets.round()
            expected = f'integer class indices in [0, {self.num_classes})'
        if bool(invalid.any()):
            values = torch.unique(targets[invalid])[:10].tolist()
            raise ValueError(f'train_targets hold {values}; expected {expected}.')
        if self.multi_label:
            self.targets = targets.to(torch.int8)
            scored = (targets != IGNORE_TARGET).sum(0)
            unscored = torch.nonzero(scored == 0).flatten().tolist()
            if unscored:
                raise ValueError(f'Classes {unscored} have no scored entry (1 or 0) among the '
                                 f'{num_train} train targets: k-NN cannot score them.')
            dtype = self.train.dtype
            self.prior = (targets == 1).sum(0).to(dtype) / scored.to(dtype)
        else:
            self.targets = targets.long()

    def scores(self,
               query_features: TensorLike,
               query_chunk_size: int = DEFAULT_QUERY_CHUNK_SIZE) -> torch.Tensor:
        """Class scores of each query (the formulas of :mod:`~.knn`).

        Args:
            query_features (torch.Tensor | np.ndarray): Query embeddings, shape (M, C).
            query_chunk_size (int): Queries per block. Defaults to 1024.

        Returns:
            torch.Tensor: Shape (M, num_classes), in [0, 1], on the train features' device;
            single-label rows sum to 1.
        """
        query = self._query(query_features)
        out = self.train.new_empty(len(query), self.num_classes)
        for start, values, indices in self._chunks(query, query_chunk_size):
            out[start:start + len(values)] = self._vote(values, indices)
        return out

    def _vote(self, values: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        if not self.multi_label:
            weights = torch.exp((values - values[:, :1]) / self.temperature)
            # A one-hot product, not scatter_add_: its sums do not depend on thread timing.
            onehot = F.one_hot(self.targets[indices], self.num_classes).to(weights.dtype)
            votes = torch.einsum('qk,qkc->qc', weights, onehot)
            return votes / votes.sum(dim=1, keepdim=True)
        targets = self.targets[indices]  # (q, k, classes)
        scored = targets != IGNORE_TARGET
        sims = values.unsqueeze(2).expand(-1, -1, self.num_classes)
        top = sims.masked_fill(~scored, float('-inf')).amax(dim=1, keepdim=True)
        top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
        weights = torch.exp((sims - top) / self.temperature) * scored
        total = weights.sum(dim=1)
        positive = (weights * (targets == 1)).sum(dim=1)
        # total >= 1 where a neighbour is scored (its top weight is exp(0)); the clamp only
        # keeps 0 / 0 out of the branch that the prior replaces.
        return torch.where(total > 0, positive / total.clamp_min(1), self.prior)


def knn_neighbours(train_features: TensorLike,
                   query_features: TensorLike,
                   k: int = DEFAULT_K,
                   query_chunk_size: int = DEFAULT_QUERY_CHUNK_SIZE,
                   train_chunk_size: int = DEFAULT_TRAIN_CHUNK_SIZE
                   ) -> Tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` most similar train samples (cosine similarity) of each query.

    Args:
        train_features (torch.Tensor | np.ndarray): Train embeddings, shape (N, C).
        query_features (torch.Tensor | np.ndarray): Query embeddings, shape (M, C).
        k (int): Number of neighbours, clipped to N. Defaults to 200.
        query_chunk_size (int): Queries per block. Defaults to 1024.
        train_chunk_size (int): Train samples per block. Defaults to 65536.

    Returns:
        tuple[torch.Tensor, torch.Tensor]: Similarities (M, min(k, N)) and train indices,
        ordered by similarity (descending), equal similarities by index (ascending).
    """
    index = KNNIndex(train_features, k, train_chunk_size)
    return index.neighbours(query_features, query_chunk_size)


def knn_scores(train_features: TensorLike,
               train_targets: TensorLike,
               query_features: TensorLike,
               k: int = DEFAULT_K,
               temperature: float = DEFAULT_TEMPERATURE,
               num_classes: Optional[int] = None,
               query_chunk_size: int = DEFAULT_QUERY_CHUNK_SIZE,
               train_chunk_size: int = DEFAULT_TRAIN_CHUNK_SIZE) -> torch.Tensor:
    """Weighted k-NN class scores of query embeddings (see :mod:`~.knn` for the formulas).

    Feed them to the dataset's metric functions (:func:`~.cohen_kappa`,
    :func:`~.per_class_roc_auc`, :func:`~.balanced_recall`) as any model's class scores.

    Args:
        train_features (torch.Tensor | np.ndarray): Train embeddings, shape (N, C).
        train_targets (torch.Tensor | np.ndarray): Class indices (N,) or multi-label targets
            (N, num_classes) in {1, 0, -1 = ignored}.
        query_features (torch.Tensor | np.ndarray): Query embeddings, shape (M, C).
        k (int): Number of neighbours, clipped to N. Defaults to 200.
        temperature (float): ``T`` of the vote weights ``exp(s / T)``. Defaults to 0.07.
        num_classes (int, optional): Number of classes (required for class indices).
            Defaults to None.
        query_chunk_size (int): Queries per block. Defaults to 1024.
        train_chunk_size (int): Train samples per block. Defaults to 65536.

    Returns:
        torch.Tensor: Scores (M, num_classes) on the train features' device.
    """
    classifier = KNNClassifier(train_features, train_targets, num_classes, k, temperature,
                               train_chunk_size)
    return classifier.scores(query_features, query_chunk_size)
