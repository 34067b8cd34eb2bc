"""Every config under configs/ builds its whole Runner and runs it: train, validate, test.

``test_config_runner_runs`` loads each config as ``tools/train.py`` does, points its datasets at a
tiny synthetic tree (:func:`retarget_data`) and shrinks only what the CPU needs shrunk
(:func:`shrink_for_cpu`: input size, batch size, workers, training length, weight files). The
model, optimizer wrapper, schedulers, hooks and evaluators stay the config's own, which the test
checks; the Runner then runs one training iteration, one validation and one test (those the
config has), and the trained model one forward pass at the config's own input size.
"""
import copy
import json
import math
import os.path as osp
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Tuple

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

from medtrans.apis import build_runner, load_config, prepare_config, retarget
from medtrans.apis.retarget import RUN_SECTIONS
from medtrans.registry import DATASETS, MODELS
from medtrans.testing import (
    make_synthetic_isic2018,
    write_synthetic_csaw_s,
    write_synthetic_layout,
)

REPO = Path(__file__).resolve().parents[2]
# configs/studies/ holds study specs (tools/run_study.py), not run configs.
CONFIGS = sorted(p for p in (REPO / 'configs').rglob('*.py')
                 if '_base_' not in p.parts and 'studies' not in p.parts)
CONFIG_IDS = [str(p.relative_to(REPO / 'configs')) for p in CONFIGS]
SIZE = 64  # input side on the CPU: a multiple of ViT patches (8, 16) and of CNN strides (32)
BATCH = 2
SIZE_KEYS = ('scale', 'crop_size')  # the transforms' output sizes


def _isic2018_task1(root: Path) -> dict:
    # 10 training images: a 9/1 train/val split. Every official set is there for the configs
    # that test on it.
    make_synthetic_isic2018(root, num_train=10, num_val=1, num_test=1, size=(SIZE, SIZE))
    return dict(data_root=str(root))


def _csaw_s(root: Path) -> dict:
    # 10 training patients of 2 screenings: a 9/1 patient split; one test patient.
    write_synthetic_csaw_s(str(root), train_patients=10, test_patients=1, size=SIZE)
    return dict(data_root=str(root))


#: Dataset type (without scope) -> function that writes a tiny tree in that dataset's on-disk
#: layout under the given folder and returns the dataset fields pointing at it, so that the
#: config's own splits are read. A dataset without an entry is read from its fuzz layout
#: (``medtrans.testing.find_layout``, which every registered dataset has), as that layout's
#: split.
SYNTHETIC_DATA: Dict[str, Callable[[Path], dict]] = {
    'ISIC2018Task1Dataset': _isic2018_task1,
    'CSAWSDataset': _csaw_s,
}


def _one_iteration_of_iterations(cfg: Config) -> None:
    cfg.train_cfg.update(max_iters=1, val_interval=1)


def _one_iteration_of_epochs(cfg: Config) -> None:
    # One epoch of one batch: the first BATCH samples of the training set.
    # Validation as the config begins it: the DINO configs' k-NN validation (from epoch 10) is
    # built but not run here; test_dino_configs.py runs it after an epoch on each dataset.
    cfg.train_cfg.update(max_epochs=1, val_interval=1)
    for dataset in _datasets(cfg.train_dataloader):
        dataset['indices'] = BATCH


#: Train loop type (without scope) -> how to make it train for exactly one iteration, followed by
#: one validation if the config validates. A new loop adds its entry.
ONE_ITERATION: Dict[str, Callable[[Config], None]] = {
    'IterBasedTrainLoop': _one_iteration_of_iterations,
    'ResumableIterBasedTrainLoop': _one_iteration_of_iterations,
    'IterBasedEpochsTrainLoop': _one_iteration_of_epochs,
}


#: Hook type (without scope) -> name prefixes of the parameters it keeps from the optimizer in
#: the first iteration by design (DINO freezes its last layer during the first epoch).
FROZEN_AT_FIRST_ITERATION: Dict[str, Tuple[str, ...]] = {
    'DINOHook': ('head.last_layer.', ),
}


def _type_name(cfg: dict) -> str:
    return str(cfg['type']).split('.')[-1]


def _dicts(node) -> Iterator[dict]:
    """Every dict in a config tree, outer before inner."""
    if isinstance(node, dict):
        yield node
        node = list(node.values())
    if isinstance(node, (list, tuple)):
        for value in node:
            yield from _dicts(value)


def _datasets(loader_cfg: dict) -> List[dict]:
    """The dataset configs of a dataloader, those inside dataset wrappers included."""
    dataset = loader_cfg['dataset']
    if 'dataset' in dataset:
        return _datasets(dataset)
    if 'datasets' in dataset:
        return [d for inner in dataset['datasets'] for d in _datasets(dict(dataset=inner))]
    return [dataset]


def _loaders(cfg: Config) -> List[str]:
    """The dataloaders the config uses: a run without a loop (e.g. ``val_cfg=None``) has none."""
    loops = dict(train_dataloader='train_cfg', val_dataloader='val_cfg',
                 test_dataloader='test_cfg')
    return [name for name, loop in loops.items() if cfg.get(name) and cfg.get(loop)]


def _is_size(value) -> bool:
    """An int, or a non-empty tuple/list of ints (not a range of floats)."""
    if isinstance(value, (tuple, list)):
        return bool(value) and all(_is_size(v) for v in value)
    return isinstance(value, int) and not isinstance(value, bool)


def _resized(value, side: int):
    return type(value)(side for _ in value) if isinstance(value, (tuple, list)) else side


def input_size(cfg: Config) -> Tuple[int, int]:
    """The model's input size: the last output size of the test pipeline."""
    sizes = [t[key] for t in _dicts(cfg.test_dataloader.dataset.get('pipeline', []))
             for key in SIZE_KEYS if key in t and _is_size(t[key])]
    assert sizes, 'the test pipeline sets no input size (scale / crop_size)'
    size = sizes[-1]
    return tuple(size) if isinstance(size, (tuple, list)) else (size, size)


def shrink_for_cpu(cfg: Config) -> None:
    """Make a config run in seconds on a CPU without changing any of its components.

    Lowered: every pipeline's output sizes (``scale``, ``crop_size``) and the data
    preprocessor's ``size`` to :data:`SIZE` (or the backbone's ``min_input_size``, rounded up
    to a multiple of 32); batch size to :data:`BATCH`; workers to 0; training to one iteration
    followed by validation. ImageNet weight files, which are not shipped, are replaced by random
    initialisation (``pretrained``, ``Pretrained`` init).
    """
    with DefaultScope.overwrite_default_scope('medtrans'):
        backbone = MODELS.get(cfg.model.backbone.type)
    side = SIZE
    while side < getattr(backbone, 'min_input_size', 1):
        side += 32
    for name in _loaders(cfg):
        loader = cfg[name]
        loader.update(batch_size=min(loader.batch_size, BATCH), num_workers=0,
                      persistent_workers=False)
        for transform in _dicts(loader.dataset):
            for key in SIZE_KEYS:
                if key in transform and _is_size(transform[key]):
                    transform[key] = _resized(transform[key], side)
    preprocessor = cfg.model.get('data_preprocessor', {})
    if 'size' in preprocessor:
        preprocessor['size'] = _resized(preprocessor['size'], side)
    for module in _dicts(cfg.model):
        if module.get('pretrained') is not None:
            module['pretrained'] = None
        init_cfg = module.get('init_cfg')
        inits = init_cfg if isinstance(init_cfg, list) else [init_cfg]
        if any(isinstance(i, dict) and i.get('type') == 'Pretrained' for i in inits):
            module['init_cfg'] = None
    if cfg.get('train_cfg'):
        loop = _type_name(cfg.train_cfg)
        assert loop in ONE_ITERATION, (
            f'train_cfg.type {loop!r}: add to ONE_ITERATION in {Path(__file__).name} how this '
            'loop trains for exactly one iteration.')
        ONE_ITERATION[loop](cfg)


@pytest.fixture(scope='module')
def synthetic_data(tmp_path_factory) -> Callable[[str], dict]:
    """Dataset type -> the fields pointing at its synthetic tree (written once per module)."""
    written: Dict[str, dict] = {}

    def fields(dataset_type: str) -> dict:
        if dataset_type not in written:
            root = tmp_path_factory.mktemp('data') / dataset_type
            if dataset_type in SYNTHETIC_DATA:
                written[dataset_type] = SYNTHETIC_DATA[dataset_type](root)
            else:
                layout = write_synthetic_layout(DATASETS.get(dataset_type), str(root))
                written[dataset_type] = layout.dataset_cfg
        return written[dataset_type]

    return fields


def retarget_data(cfg: Config, synthetic_data: Callable[[str], dict]) -> None:
    """Point every dataset of every dataloader (wrapped ones too) at its synthetic tree."""
    for name in _loaders(cfg):
        for dataset in _datasets(cfg[name]):
            dataset.update(synthetic_data(_type_name(dataset)))


def test_configs_found():
    assert REPO / 'configs' / 'deeplab3_deit_s_isic2018.py' in CONFIGS


@pytest.mark.parametrize('path', CONFIGS, ids=CONFIG_IDS)
def test_config_loads_as_the_tools_load_it(path, tmp_path):
    cfg = load_config(str(path))
    # --data-root and --pretrained reach every dataloader and the backbone, and nothing else.
    retargeted = copy.deepcopy(cfg)
    retarget(retargeted, data_root='/elsewhere/data', pretrained='/elsewhere/weights.pth')
    expected = copy.deepcopy(cfg)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if expected.get(loader) is not None:
            expected[loader].dataset.data_root = '/elsewhere/data'
    backbone = expected.model.backbone
    if 'pretrained' in backbone:
        backbone.pretrained = '/elsewhere/weights.pth'
    else:  # mmseg's ResNet
        backbone.init_cfg = dict(type='Pretrained', checkpoint='/elsewhere/weights.pth')
    for name, value in (('data_root', '/elsewhere/data'), ('pretrained', '/elsewhere/weights.pth')):
        if name in expected:
            expected[name] = value
    assert _run_sections(retargeted) == _run_sections(expected)

    cfg = prepare_config(cfg, str(path), work_dir=str(tmp_path))
    assert cfg.default_scope == 'medtrans'
    text = repr(cfg.to_dict())  # not pretty_text, which yapf takes seconds to format
    assert '{work_dir}' not in text and '{monitor}' not in text


def _run_sections(cfg: Config) -> dict:
    return {key: cfg.get(key) for key in RUN_SECTIONS + ('data_root', 'pretrained')}


@pytest.fixture
def work_dir(tmp_path) -> Iterator[Path]:
    """A work dir whose checkpoints (up to GBs with the optimizer state) are removed.

    In memory (``/dev/shm``) where there is one: the Runner test writes three checkpoints per
    config, each fsynced, and the largest models' are over 1 GB.
    """
    in_memory = osp.isdir('/dev/shm')
    parent = Path(tempfile.mkdtemp(dir='/dev/shm')) if in_memory else tmp_path
    yield parent / 'work'
    if in_memory:
        shutil.rmtree(parent, ignore_errors=True)
    for checkpoint in (tmp_path / 'work').glob('*.pth'):
        checkpoint.unlink()


@pytest.fixture
def pretty_text_once(monkeypatch):
    """Format each config once: MMEngine formats the whole config with yapf for every
    checkpoint it saves and for the log (~0.3 s each, eight times per Runner test)."""
    formatted = weakref.WeakKeyDictionary()
    pretty_text = Config.pretty_text

    def once(cfg):
        if cfg not in formatted:
            formatted[cfg] = pretty_text.fget(cfg)
        return formatted[cfg]

    monkeypatch.setattr(Config, 'pretty_text', property(once))


#: What the Runner reads of a config (``Runner.from_cfg``); two configs equal in these build the
#: same Runner.
RUNNER_KEYS = ('model', 'train_dataloader', 'val_dataloader', 'test_dataloader', 'train_cfg',
               'val_cfg', 'test_cfg', 'auto_scale_lr', 'optim_wrapper', 'param_scheduler',
               'val_evaluator', 'test_evaluator', 'default_hooks', 'custom_hooks',
               'data_preprocessor', 'load_from', 'resume', 'env_cfg', 'log_processor',
               'log_level', 'visualizer', 'default_scope', 'randomness', 'launcher')
#: Runner contents (as JSON, without / with the optimizer wrapper) run in this session.
_RUNNERS_RUN: Dict[str, str] = {}
_RUNNERS_RUN_BUT_OPTIMIZER: Dict[str, str] = {}
#: (model, input size) run at the config's own input size in this session.
_FULL_SIZE_RUN: Dict[str, str] = {}


def _runner_contents(cfg: Config, work_dir: Path, skip: Tuple[str, ...] = ()) -> str:
    contents = {key: cfg.get(key) for key in RUNNER_KEYS if key not in skip}
    return json.dumps(contents, sort_keys=True, default=repr).replace(str(work_dir), '<work>')


def _assert_optimizer_steps(cfg: Config) -> None:
    """The config's optimizer wrapper builds on its model and applies one update to it."""
    with DefaultScope.overwrite_default_scope('medtrans'):
        model = MODELS.build(cfg.model)
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    assert type(optim_wrapper).__name__ == _type_name(cfg.optim_wrapper)
    assert type(optim_wrapper.optimizer).__name__ == _type_name(cfg.optim_wrapper.optimizer)
    before = [p.detach().clone() for p in model.parameters()]
    loss = sum((p.float() ** 2).sum() for p in model.parameters() if p.requires_grad)
    optim_wrapper.update_params(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def _metric_types(evaluator_cfg) -> List[str]:
    return [_type_name(m) for m in (
        evaluator_cfg if isinstance(evaluator_cfg, list) else [evaluator_cfg])]


def _assert_components_are_the_configs(runner, cfg: Config) -> None:
    assert type(runner.model).__name__ == _type_name(cfg.model)
    assert type(runner.model.backbone).__name__ == _type_name(cfg.model.backbone)
    hook_types = {type(h).__name__ for h in runner.hooks}
    configured = list(cfg.default_hooks.values()) + list(cfg.get('custom_hooks', []))
    assert {_type_name(h) for h in configured if h} <= hook_types
    if cfg.get('train_cfg'):
        assert type(runner.train_loop).__name__ == _type_name(cfg.train_cfg)
        assert type(runner.optim_wrapper).__name__ == _type_name(cfg.optim_wrapper)
        assert (type(runner.optim_wrapper.optimizer).__name__
                == _type_name(cfg.optim_wrapper.optimizer))
        assert ([type(s).__name__ for s in runner.param_schedulers]
                == [_type_name(s) for s in cfg.param_scheduler])
    for mode in ('val', 'test'):
        if cfg.get(f'{mode}_cfg'):
            loop = getattr(runner, f'{mode}_loop')
            assert type(loop).__name__ == _type_name(cfg[f'{mode}_cfg'])
            assert ([type(m).__name__ for m in loop.evaluator.metrics]
                    == _metric_types(cfg[f'{mode}_evaluator']))


def _assert_metrics_recorded(work_dir: Path, cfg: Config) -> None:
    """MetricsJsonHook wrote each evaluation, with the metric that picks the best checkpoint."""
    # The dataset base's headline metric, which the checkpoint hook's save_best='auto' follows.
    monitor = cfg.get('monitor') if cfg.default_hooks.get('checkpoint', {}).get('save_best') \
        else None
    validated = cfg.get('val_cfg') and cfg.get('train_cfg', {}).get('val_begin', 1) <= 1
    for mode, name, ran in (('val', 'val_1.json', validated),
                            ('test', 'test_latest.json', cfg.get('test_cfg'))):
        if not ran:
            assert not (work_dir / 'metrics' / name).exists()
            continue
        record = json.loads((work_dir / 'metrics' / name).read_text())
        assert record['mode'] == mode and record['iter'] == (1 if cfg.get('train_cfg') else 0)
        # A per-class value may be undefined (null) on a tiny set; the headline metric is not.
        assert record['metrics'], record
        if monitor:
            value = record['metrics'].get(monitor)
            assert value is not None and math.isfinite(value), (monitor, record['metrics'])


@pytest.mark.slow
@pytest.mark.parametrize('path', CONFIGS, ids=CONFIG_IDS)
def test_config_runner_runs(path, work_dir, synthetic_data, pretty_text_once):
    cfg = prepare_config(load_config(str(path)), str(path), work_dir=str(work_dir))
    full_size = input_size(cfg) if cfg.get('test_cfg') else None
    retarget_data(cfg, synthetic_data)
    shrink_for_cpu(cfg)
    # A config that differs from one already run only in what the shrinking removed (the
    # ImageNet+DINO rows differ from the ImageNet ones only in `pretrained`) builds the same
    # Runner: it is not run twice. One that differs only in its optimizer wrapper (random init
    # vs ImageNet: LR, Adam vs AdamW) has that wrapper built and stepped on its model.
    contents = _runner_contents(cfg, work_dir) + f' at {full_size}'
    if contents in _RUNNERS_RUN:
        return
    but_optimizer = _runner_contents(cfg, work_dir, skip=('optim_wrapper', )) + f' {full_size}'
    if but_optimizer in _RUNNERS_RUN_BUT_OPTIMIZER:
        _assert_optimizer_steps(cfg)
        return
    _RUNNERS_RUN[contents] = _RUNNERS_RUN_BUT_OPTIMIZER[but_optimizer] = str(path)
    runner = build_runner(cfg)
    if cfg.get('train_cfg'):
        runner.train()  # validates after the iteration when the config validates
    if cfg.get('test_cfg'):
        runner.test()
    _assert_components_are_the_configs(runner, cfg)

    if cfg.get('train_cfg'):
        assert runner.iter == 1
        # One optimizer step reached every trainable parameter (Adam-family state counts them)
        # but those a hook freezes on purpose.
        frozen = tuple(prefix for h in cfg.get('custom_hooks', [])
                       for prefix in FROZEN_AT_FIRST_ITERATION.get(_type_name(h), ()))
        state = runner.optim_wrapper.optimizer.state
        trainable = [(n, p) for n, p in runner.model.named_parameters()
                     if p.requires_grad and not n.startswith(frozen)]
        not_updated = [n for n, p in trainable
                       if p not in state or int(state[p].get('step', 1)) != 1]
        assert trainable and not not_updated, f'no single optimizer step for {not_updated[:5]}'
        # The checkpoint hook saved the last iteration.
        assert (work_dir / 'iter_1.pth').is_file()
    _assert_metrics_recorded(work_dir, cfg)

    model_at_size = json.dumps(cfg.model, sort_keys=True, default=repr) + f' {full_size}'
    if full_size is not None and model_at_size not in _FULL_SIZE_RUN:
        # The model also runs at the config's own input size (once per model and size).
        _FULL_SIZE_RUN[model_at_size] = str(path)
        runner.model.eval()
        with torch.no_grad():
            out = runner.model(torch.rand(1, 3, *full_size), mode='tensor')
        head = cfg.model.get('decode_head') or cfg.model.get('head') or {}
        if 'num_classes' in head:
            assert out.shape[:2] == (1, head.num_classes)
