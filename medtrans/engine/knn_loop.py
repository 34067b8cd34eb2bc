"""k-NN evaluation of frozen embeddings as MMEngine validation and test loops.

Why loops: an MMEngine metric only sees the model's outputs for the evaluated set, while k-NN
needs the embeddings of a second set (the train split, the "memory") computed by the same
weights at the same moment. A loop owns its dataloaders and decides what the model computes,
so :class:`KNNValLoop` and :class:`KNNTestLoop` replace ``ValLoop`` / ``TestLoop`` and keep
everything else the Runner provides: the configured evaluator (the dataset's own metric,
e.g. ``CohenKappaMetric``), the hooks (``MetricsJsonHook`` writes the metrics JSON,
``CheckpointHook`` keeps the best checkpoint by a k-NN metric during a DINO run, EMA hooks swap
weights before the epoch), distributed sampling and gathering.

One run of the loop (``val`` or ``test``):

1. ``before_{val,test}`` and ``before_{val,test}_epoch`` hooks; the model goes to eval mode.
2. **Memory** (its progress: a bar on a terminal, else a log line every 30 s): each image of
   the memory dataloader (by default the config's ``train_dataloader`` dataset read with the
   evaluation pipeline, see :func:`memory_dataloader_cfg`) goes through the model's data
   preprocessor and its embedding (``forward_embedding`` of ``model.backbone`` or another
   submodule, the :class:`EmbeddingBackbone` interface; or ``model.extract_feat``), under
   ``torch.no_grad``.
   Embeddings, targets and dataset indices (``sample_idx``) stay on the model's device. Under
   DDP every rank gathers them from all ranks (``mmengine.dist.all_gather``), drops the
   distributed sampler's padding (repeated indices: the first copy is kept) and orders them
   by dataset index, so every rank holds the same memory and a run on any number of
   processes ranks neighbours alike.
3. **Queries**: each batch of the evaluation dataloader (this rank's share) is embedded the
   same way and scored by :class:`~medtrans.evaluation.functional.KNNClassifier`; the scores
   become the data samples' ``pred_score`` and go to the evaluator, as a model's predictions
   would (the iteration hooks see them as outputs). The evaluator gathers them across ranks.
4. The evaluator's metrics go to the ``after_*_epoch`` hooks and are returned.
"""
import copy
import logging
import time
from typing import Callable, Dict, List, Optional, Sequence, Union

import torch
from mmengine.dist import all_gather, broadcast, get_rank, get_world_size
from mmengine.evaluator import Evaluator
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import TestLoop, ValLoop
from mmengine.runner.amp import autocast
from torch.utils.data import DataLoader

from medtrans.evaluation.functional.knn import (
    DEFAULT_K,
    DEFAULT_QUERY_CHUNK_SIZE,
    DEFAULT_TEMPERATURE,
    DEFAULT_TRAIN_CHUNK_SIZE,
    KNNClassifier,
)
from medtrans.registry import LOOPS
from medtrans.utils.progress import to_current_logger, track
from medtrans.utils.upstream import build_loop_dataloader, runner_load_from, train_loop_built

__all__ = ['KNNLoopBase', 'KNNValLoop', 'KNNTestLoop', 'memory_dataloader_cfg']

EXTRACT_FEAT = 'extract_feat'


def memory_dataloader_cfg(train_dataloader: dict, eval_dataloader: dict) -> dict:
    """The default memory set of a k-NN evaluation: the train split, read like the evaluated one.

    Args:
        train_dataloader (dict): The config's ``train_dataloader``; its ``dataset`` is taken.
        eval_dataloader (dict): The evaluated dataloader's config; its dataset ``pipeline``,
            batch size, workers and collate function are taken.

    Returns:
        dict: A dataloader config: the train dataset with the evaluation pipeline and
        ``test_mode=True``, a ``DefaultSampler`` without shuffling.

    Raises:
        ValueError: The train dataset has no ``pipeline`` of its own (a dataset wrapper):
            give the loop a ``memory_dataloader``.
    """
    dataset = copy.deepcopy(dict(train_dataloader['dataset']))
    if 'pipeline' not in dataset or 'pipeline' not in eval_dataloader['dataset']:
        raise ValueError(
            'k-NN: the memory set (train split with the evaluation pipeline) is derived from '
            "train_dataloader.dataset and the evaluated dataset's pipeline, but one of them "
            f"has no 'pipeline' (a dataset wrapper? type {dataset.get('type')!r}); set the "
            "loop's memory_dataloader explicitly.")
    dataset.update(pipeline=copy.deepcopy(eval_dataloader['dataset']['pipeline']),
                   test_mode=True)
    loader = {key: copy.deepcopy(value) for key, value in eval_dataloader.items()
              if key not in ('dataset', 'sampler', 'batch_sampler')}
    loader.update(sampler=dict(type='DefaultSampler', shuffle=False), dataset=dataset)
    return loader


def _sample_name(sample) -> str:
    for key in ('img_path', 'sample_id', 'sample_idx'):
        if sample.get(key) is not None:
            return f'{key} {sample.get(key)}'
    return '<sample without img_path, sample_id or sample_idx>'


def _gather_across_ranks(tensors: List[torch.Tensor]) -> List[torch.Tensor]:
    """Concatenate each tensor over the ranks, in rank order (rows may differ per rank)."""
    if get_world_size() == 1:
        return tensors
    count = torch.tensor([len(tensors[0])], device=tensors[0].device)
    counts = torch.cat(all_gather(count)).tolist()
    rows = max(counts)
    gathered = []
    for tensor in tensors:
        padded = tensor.new_zeros((rows, *tensor.shape[1:]))
        padded[:len(tensor)] = tensor
        parts = all_gather(padded)
        gathered.append(torch.cat([part[:n] for part, n in zip(parts, counts)]))
    return gathered


class KNNLoopBase:
    """What :class:`KNNValLoop` and :class:`KNNTestLoop` share; ``stage`` names the hooks.

    Args:
        runner (Runner): The runner.
        dataloader (DataLoader | dict): The evaluated set (the Runner passes its
            ``{val,test}_dataloader``).
        evaluator (Evaluator | dict | list): The dataset's metric(s) (the Runner passes its
            ``{val,test}_evaluator``), which read the k-NN class scores as ``pred_score``.
        memory_dataloader (DataLoader | dict, optional): The memory (train) set. Defaults to
            None: ``train_dataloader``'s dataset with the evaluated dataset's pipeline
            (:func:`memory_dataloader_cfg`). Its data samples need ``sample_idx``.
        k (int): Number of neighbours (clipped to the memory size, with a warning). Defaults
            to 200.
        temperature (float): ``T`` of the vote weights ``exp(s / T)``. Defaults to 0.07.
        multi_label (bool, optional): Whether targets are multi-label (``gt_score`` in
            {1, 0, -1}, or ``gt_label`` lists of positives). Defaults to None: as the
            evaluator's metrics declare (``ROCAUCMetric(multi_label=...)``).
        embedding (str): Where the embedding comes from: the attribute path of the model's
            submodule whose ``forward_embedding`` gives it (the :class:`EmbeddingBackbone`
            interface: the CLS token of a ViT, the pooled last stage of a CNN), e.g.
            ``'backbone'`` or ``'teacher.backbone'`` (DINO's teacher); or ``'extract_feat'``:
            the model's own ``extract_feat`` (its last output if a tuple). Defaults to
            ``'backbone'``.
        query_chunk_size (int): Queries per block of the similarity matrix. Defaults to 1024.
        train_chunk_size (int): Memory samples per block. Defaults to 65536.
        fp16 (bool): Embed under automatic mixed precision. Defaults to False.
    """

    stage: str

    def __init__(self,
                 runner,
                 dataloader: Union[DataLoader, Dict],
                 evaluator: Union[Evaluator, Dict, List],
                 memory_dataloader: Optional[Union[DataLoader, Dict]] = None,
                 k: int = DEFAULT_K,
                 temperature: float = DEFAULT_TEMPERATURE,
                 multi_label: Optional[bool] = None,
                 embedding: str = 'backbone',
                 query_chunk_size: int = DEFAULT_QUERY_CHUNK_SIZE,
                 train_chunk_size: int = DEFAULT_TRAIN_CHUNK_SIZE,
                 fp16: bool = False) -> None:
        owner = type(self).__name__
        if not isinstance(embedding, str) or not embedding:
            raise ValueError(f"{owner}: embedding must name a submodule ('backbone') or be "
                             f"'{EXTRACT_FEAT}', got {embedding!r}.")
        if memory_dataloader is None:
            eval_cfg = (dataloader if isinstance(dataloader, dict) else
                        runner.cfg.get(f'{self.stage}_dataloader'))
            if runner.cfg.get('train_dataloader') is None or eval_cfg is None:
                raise ValueError(f'{owner}: without memory_dataloader, the memory set is the '
                                 'train_dataloader dataset read with the evaluation pipeline, '
                                 'but the config has no train_dataloader.')
            memory_dataloader = memory_dataloader_cfg(runner.cfg.train_dataloader, eval_cfg)
        super().__init__(runner, dataloader, evaluator, fp16)
        self.memory_dataloader = build_loop_dataloader(runner, memory_dataloader)
        self.k = k
        self.temperature = temperature
        self.embedding = embedding
        self.query_chunk_size = query_chunk_size
        self.train_chunk_size = train_chunk_size
        self.multi_label = self._resolve_multi_label(multi_label)
        self.classes = self._classes()
        if self.classes is None and not self.multi_label:
            raise ValueError(f"{owner}: single-label k-NN needs dataset_meta['classes'] (the "
                             "memory or evaluated dataset's metainfo) for the number of "
                             'classes.')
        self._classifier: Optional[KNNClassifier] = None
        self._embed_fn: Optional[Callable[[torch.Tensor], torch.Tensor]] = None

    def _resolve_multi_label(self, multi_label: Optional[bool]) -> bool:
        """The loop's ``multi_label``, else what the evaluator's metrics declare."""
        if multi_label is not None:
            return bool(multi_label)
        declared = {bool(m.multi_label) for m in self.evaluator.metrics
                    if hasattr(m, 'multi_label')}
        if len(declared) != 1:
            raise ValueError(
                f'{type(self).__name__}: set multi_label=True or False; the evaluator\'s '
                f'metrics {[type(m).__name__ for m in self.evaluator.metrics]} do not state '
                'it with one voice (their multi_label attribute).')
        return declared.pop()

    def _classes(self) -> Optional[Sequence[str]]:
        memory = getattr(self.memory_dataloader.dataset, 'metainfo', {}).get('classes')
        evaluated = getattr(self.dataloader.dataset, 'metainfo', {}).get('classes')
        if memory is not None and evaluated is not None and list(memory) != list(evaluated):
            raise ValueError(f'{type(self).__name__}: the memory set has classes {list(memory)}'
                             f' but the evaluated set {list(evaluated)}.')
        return memory if memory is not None else evaluated

    @property
    def _model(self) -> torch.nn.Module:
        model = self.runner.model
        return model.module if is_model_wrapper(model) else model

    def _embedding_fn(self) -> Callable[[torch.Tensor], torch.Tensor]:
        owner = type(self).__name__
        model = self._model
        if self.embedding == EXTRACT_FEAT:
            if not callable(getattr(model, 'extract_feat', None)):
                raise TypeError(f"{owner}: embedding='extract_feat' but {type(model).__name__} "
                                'has no extract_feat method.')
            return model.extract_feat
        try:
            module = model.get_submodule(self.embedding)
        except AttributeError:
            raise ValueError(f'{owner}: embedding={self.embedding!r} names no submodule of '
                             f'{type(model).__name__}.') from None
        if not callable(getattr(module, 'forward_embedding', None)):
            raise TypeError(
                f'{owner}: embedding={self.embedding!r} is a {type(module).__name__}, which has '
                'no forward_embedding (the EmbeddingBackbone interface of medtrans backbones); '
                "name a medtrans backbone, or use embedding='extract_feat'.")
        return module.forward_embedding

    def _embed(self, data_batch: dict) -> tuple:
        """The embeddings (B, C) of a batch, and its data samples."""
        data = self._model.data_preprocessor(data_batch, False)
        if not isinstance(data['inputs'], torch.Tensor):
            raise TypeError(
                f"{type(self).__name__}: the data preprocessor gave {type(data['inputs'])} "
                'inputs, not one batch tensor (a self-supervised preprocessor fed by '
                "pseudo_collate? give the dataloader collate_fn=dict(type='default_collate')).")
        with autocast(enabled=self.fp16):
            output = self._embed_fn(data['inputs'])
        embedding = output[-1] if isinstance(output, (tuple, list)) else output
        samples = data['data_samples']
        if not isinstance(embedding, torch.Tensor) or embedding.dim() != 2 \
                or len(embedding) != len(samples):
            shape = tuple(embedding.shape) if isinstance(embedding, torch.Tensor) else embedding
            raise ValueError(f"{type(self).__name__}: the embedding ('{self.embedding}') of a "
                             f'batch of {len(samples)} images must be a (B, C) tensor, got '
                             f'{shape}.')
        return embedding, samples

    def _targets(self, samples: Sequence) -> torch.Tensor:
        """Single-label: class indices (B,); multi-label: targets (B, C) in {1, 0, -1}."""
        owner = type(self).__name__
        if self.multi_label and 'gt_score' in samples[0]:
            return torch.stack([s.gt_score.reshape(-1) for s in samples]).float()
        labels = []
        for sample in samples:
            if 'gt_label' not in sample:
                kind = 'gt_score or gt_label' if self.multi_label else 'gt_label'
                raise ValueError(f'{owner}: memory {_sample_name(sample)} has no {kind}.')
            labels.append(sample.gt_label.reshape(-1).long())
        if not self.multi_label:
            odd = next((i for i, label in enumerate(labels) if len(label) != 1), None)
            if odd is not None:
                raise ValueError(f'{owner}: memory {_sample_name(samples[odd])} has '
                                 f'{len(labels[odd])} labels; single-label k-NN needs one '
                                 '(set multi_label=True for multi-label data).')
            return torch.cat(labels)
        # mmpretrain's multi-label convention: gt_label lists the positive classes.
        if self.classes is None:
            raise ValueError(f'{owner}: multi-label gt_label lists need dataset_meta '
                             "['classes'] to know the number of classes.")
        targets = torch.zeros(len(samples), len(self.classes))
        for row, label in enumerate(labels):
            targets[row, label] = 1
        return targets

    def _indices(self, samples: Sequence) -> torch.Tensor:
        indices = [s.get('sample_idx') for s in samples]
        missing = next((s for s, i in zip(samples, indices) if i is None), None)
        if missing is not None:
            raise ValueError(
                f'{type(self).__name__}: memory {_sample_name(missing)} has no sample_idx, '
                "which orders the memory across ranks; keep 'sample_idx' in the meta_keys of "
                "the pipeline's PackInputs.")
        return torch.as_tensor(indices, dtype=torch.long)

    @torch.no_grad()
    def _build_memory(self) -> KNNClassifier:
        """Embed the memory set, gather it across ranks and index it."""
        owner = type(self).__name__
        dataset = self.memory_dataloader.dataset
        start = time.perf_counter()
        features, targets, indices = [], [], []
        # The memory is the long, silent part (the queries are logged by the LoggerHook): a bar
        # on a terminal, else a line every 30 s; from the main process only.
        main_process = get_rank() == 0
        batches = track(self.memory_dataloader, len(self.memory_dataloader),
                        f'{owner}: memory ({len(dataset)} samples)',
                        log=to_current_logger if main_process else None,
                        live=None if main_process else False)
        for data_batch in batches:
            embedding, samples = self._embed(data_batch)
            features.append(embedding)
            targets.append(self._targets(samples).to(embedding.device, non_blocking=True))
            indices.append(self._indices(samples).to(embedding.device, non_blocking=True))
        if not features:
            raise ValueError(f'{owner}: the memory dataloader gave this rank no sample '
                             f'({type(dataset).__name__} holds {len(dataset)}).')
        features, targets, indices = _gather_across_ranks(
            [torch.cat(features), torch.cat(targets), torch.cat(indices)])
        indices, order = indices.sort(stable=True)
        first = torch.ones_like(indices, dtype=torch.bool)
        first[1:] = indices[1:] != indices[:-1]
        order, indices = order[first], indices[first]
        expected = torch.arange(len(dataset), device=indices.device)
        if len(indices) != len(dataset) or not torch.equal(indices, expected):
            raise ValueError(
                f'{owner}: the memory dataloader gave {len(indices)} distinct samples of the '
                f'{len(dataset)} in {type(dataset).__name__}; k-NN needs each once (no '
                'drop_last, a sampler that covers the dataset).')
        # Rebound, so that the unordered copies are freed before the memory is normalised.
        features, targets = features[order], targets[order]
        num_classes = None if self.classes is None else len(self.classes)
        classifier = KNNClassifier(features, targets, num_classes, self.k, self.temperature,
                                   self.train_chunk_size)
        clipped = f' (clipped from {self.k})' if classifier.k != self.k else ''
        print_log(f'{owner}: memory of {len(indices)} embeddings ({features.shape[1]} wide) '
                  f'in {time.perf_counter() - start:.1f} s; k={classifier.k}{clipped}, '
                  f'T={self.temperature}', logger='current')
        if classifier.k != self.k:
            print_log(f'{owner}: k={self.k} exceeds the {len(indices)} memory samples; every '
                      'memory sample votes.', logger='current', level=logging.WARNING)
        return classifier

    def run(self) -> dict:
        """Embed the memory set, score the evaluated set by k-NN and evaluate.

        Returns:
            dict: The evaluator's metrics.
        """
        self.runner.call_hook(f'before_{self.stage}')
        self.runner.call_hook(f'before_{self.stage}_epoch')
        self.runner.model.eval()
        self._embed_fn = self._embedding_fn()
        self._classifier = self._build_memory()
        for idx, data_batch in enumerate(self.dataloader):
            self.run_iter(idx, data_batch)
        # The memory (N x C on the device) is not kept between evaluations.
        self._classifier = self._embed_fn = None
        metrics = self.evaluator.evaluate(len(self.dataloader.dataset))
        self.runner.call_hook(f'after_{self.stage}_epoch', metrics=metrics)
        self.runner.call_hook(f'after_{self.stage}')
        return metrics

    @torch.no_grad()
    def run_iter(self, idx: int, data_batch: dict) -> None:
        """Score one batch of the evaluated set by k-NN and hand it to the evaluator.

        Args:
            idx (int): Index of the batch.
            data_batch (dict): The batch from the dataloader.
        """
        self.runner.call_hook(f'before_{self.stage}_iter', batch_idx=idx, data_batch=data_batch)
        embedding, samples = self._embed(data_batch)
        scores = self._classifier.scores(embedding, self.query_chunk_size)
        for sample, score in zip(samples, scores):
            sample.set_pred_score(score)
        self.evaluator.process(data_samples=samples, data_batch=data_batch)
        self.runner.call_hook(f'after_{self.stage}_iter', batch_idx=idx,
                              data_batch=data_batch, outputs=samples)


@LOOPS.register_module()
class KNNValLoop(KNNLoopBase, ValLoop):
    """Validation by k-NN of frozen embeddings, e.g. during DINO pretraining.

    ``val_cfg = dict(type='KNNValLoop', k=200, temperature=0.07)``; arguments as
    :class:`KNNLoopBase`, the evaluated set and metric being ``val_dataloader`` and
    ``val_evaluator``.
    """

    stage = 'val'


@LOOPS.register_module()
class KNNTestLoop(KNNLoopBase, TestLoop):
    """Test by k-NN of frozen embeddings (``tools/knn_eval.py``, ``configs/knn/``).

    ``test_cfg = dict(type='KNNTestLoop', k=200, temperature=0.07)``; arguments as
    :class:`KNNLoopBase`, the evaluated set and metric being ``test_dataloader`` and
    ``test_evaluator``.
    """

    stage = 'test'

    def run(self) -> dict:
        """Evaluate the loaded weights, or the config's initialisation when none are loaded.

        MMEngine's ``Runner.test()`` initialises no weights: a k-NN test of a config without
        ``load_from`` evaluates what ``pretrained`` names (the ImageNet or exported backbone),
        so the model's ``init_weights()`` runs here, then its state is broadcast from rank 0,
        as ``Runner.train()`` does. Weights this process trained or loaded stay as they are.
        """
        if runner_load_from(self.runner) is None and not train_loop_built(self.runner):
            model = self.runner.model
            model = model.module if is_model_wrapper(model) else model
            model.init_weights()
            for tensor in model.state_dict().values():
                broadcast(tensor)
        return super().run()
