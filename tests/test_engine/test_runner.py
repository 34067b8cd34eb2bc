"""MedtransRunner: what MMEngine's Runner does not do for medtrans runs, built from the shipped
configs."""
import copy
import os
from pathlib import Path

import pytest
import torch
from mmengine.runner import Runner

from medtrans.apis import build_runner, load_config, prepare_config
from medtrans.engine import MedtransRunner, latest_checkpoint
from medtrans.engine import runner as runner_module
from medtrans.engine.runner import fit_loader_to_machine

REPO = Path(__file__).resolve().parents[2]
HEADLINE = str(REPO / 'configs' / 'deeplab3_deit_s_isic2018.py')
CLS = str(REPO / 'configs/classification/deit-s/deit-s_in1k_1xb64_plateau_aptos2019-224.py')


def test_the_shipped_configs_name_the_runner(tmp_path):
    cfg = prepare_config(load_config(HEADLINE, pretrained=None), HEADLINE, work_dir=str(tmp_path))
    assert cfg.runner_type == 'medtrans.MedtransRunner'
    assert type(build_runner(cfg)) is MedtransRunner


@pytest.mark.parametrize('config', [HEADLINE, CLS])
def test_vis_backends_join_the_visualizer(tmp_path, config):
    """--vis-backend: the segmentation configs name their visualizer; the classification ones
    take MMEngine's default: both get the backends beside the local one."""
    # Its own experiment name: MMEngine hands a runner of the same name and second the
    # visualizer an earlier one made.
    cfg = load_config(config, {'experiment_name': tmp_path.name}, pretrained=None)
    runner = build_runner(prepare_config(cfg, config, work_dir=str(tmp_path),
                                         vis_backends=['tensorboard']))
    assert [type(b).__name__ for b in runner.visualizer._vis_backends.values()] == [
        'LocalVisBackend', 'TensorboardVisBackend']
    # (MLflow, which keeps an active run per process, is tested through the tool:
    # tests/test_tools/test_first_hour.py.)


def test_resume_picks_the_newest_complete_checkpoint(tmp_path):
    # A kill can leave MMEngine's in-place `last_checkpoint` pointer empty or one behind;
    # checkpoints themselves are written atomically, so the highest-numbered one is complete.
    for it in (2, 4, 10):
        (tmp_path / f'iter_{it}.pth').write_bytes(b'x')
    (tmp_path / 'best_IoU_iter_4.pth').write_bytes(b'x')
    (tmp_path / 'last_checkpoint').write_text('')
    assert latest_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_10.pth')
    # The stock path: resume=True in the config, no load_from; the Runner finds the file.
    cfg = load_config(HEADLINE, {'resume': True, 'work_dir': str(tmp_path)}, pretrained=None)
    assert build_runner(cfg).resume_from == str(tmp_path / 'iter_10.pth')


def test_resume_with_nothing_saved_starts_a_new_run(tmp_path):
    # A kill before the first checkpoint can leave MMEngine's pointer empty, which MMEngine's
    # own auto-resume would try to load ('').
    (tmp_path / 'last_checkpoint').write_text('')
    cfg = load_config(HEADLINE, {'resume': True, 'work_dir': str(tmp_path)}, pretrained=None)
    runner = build_runner(cfg)
    assert runner.resume_from is None
    runner.load_or_resume()  # what Runner.train() calls after initialising the weights


def test_runners_built_within_one_second_log_apart(tmp_path, monkeypatch):
    # MMEngine names the logger, message hub and visualizer after the run's timestamp (seconds).
    monkeypatch.setattr(runner_module.MedtransRunner, '_timestamps_taken', set())
    monkeypatch.setattr('time.strftime', lambda *args: '20261207_120000')
    runners = [build_runner(load_config(HEADLINE, {'work_dir': str(tmp_path / name)},
                                        pretrained=None)) for name in ('a', 'b')]
    assert [runner.timestamp for runner in runners] == ['20261207_120000', '20261207_120000_2']
    assert runners[0].message_hub is not runners[1].message_hub
    for runner, name in zip(runners, ('a', 'b')):
        runner.logger.info(f'run {name}')
    for runner, name in zip(runners, ('a', 'b')):
        log = (Path(runner.log_dir) / f'{runner.timestamp}.log').read_text()
        assert f'run {name}' in log and f'run {"ab".replace(name, "")}' not in log


def test_resume_falls_back_to_the_pointer(tmp_path):
    elsewhere = tmp_path / 'out' / 'iter_3.pth'
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(b'x')
    (tmp_path / 'last_checkpoint').write_text(str(elsewhere))
    assert latest_checkpoint(str(tmp_path)) == str(elsewhere)
    assert latest_checkpoint(str(tmp_path / 'out' / 'missing')) is None


@pytest.fixture
def restore_deterministic_flags():
    saved = (torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[2:]


def test_deterministic_switch_is_warn_only_once_the_runner_is_built(
        tmp_path, restore_deterministic_flags):
    # MMEngine's Runner calls use_deterministic_algorithms(True) itself, which clears warn_only:
    # what counts is the state after the Runner is built.
    cfg = load_config(HEADLINE, {'randomness.deterministic': True}, pretrained=None)
    prepare_config(cfg, HEADLINE, work_dir=str(tmp_path))
    torch.use_deterministic_algorithms(False)
    build_runner(cfg)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.is_deterministic_algorithms_warn_only_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark


def test_a_resumed_run_never_reads_the_pretrained_file(tmp_path):
    missing = str(tmp_path / 'moved_away.safetensors')
    options = {'model.backbone.pretrained': missing}
    # A new run reads `pretrained` when the Runner initialises the weights ...
    cfg = prepare_config(load_config(HEADLINE, options), HEADLINE, work_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match='moved_away.safetensors'):
        build_runner(cfg)._init_model_weights()
    # ... a resumed one does not: the checkpoint overwrites every weight.
    cfg = prepare_config(load_config(HEADLINE, options), HEADLINE, work_dir=str(tmp_path),
                         resume=str(tmp_path / 'iter_4.pth'))
    build_runner(cfg)._init_model_weights()


def test_dataloader_workers_follow_the_cores_of_each_process(monkeypatch):
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: {0, 1, 2, 3, 4, 5}, raising=False)
    monkeypatch.setenv('LOCAL_WORLD_SIZE', '2')
    cfg = load_config(HEADLINE)
    assert cfg.train_dataloader.num_workers > 3
    assert fit_loader_to_machine(cfg.train_dataloader)['num_workers'] == 3
    assert fit_loader_to_machine(dict(cfg.val_dataloader, num_workers=0))['num_workers'] == 0


def test_the_runner_fits_every_loader_it_builds(monkeypatch):
    """The loops build their loaders through runner.build_dataloader: MedtransRunner's fits
    the config before MMEngine's builds it."""
    built = []
    monkeypatch.setattr(Runner, 'build_dataloader',
                        staticmethod(lambda loader, **kwargs: built.append(loader)))
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.delenv('LOCAL_WORLD_SIZE', raising=False)
    loader = load_config(CLS).train_dataloader
    MedtransRunner.build_dataloader(loader, seed=0)
    assert built == [dict(loader, num_workers=2, pin_memory=False)]


@pytest.mark.parametrize('gpu', [True, False])
def test_pinned_memory_only_where_there_is_a_gpu(monkeypatch, gpu):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: gpu)
    for config in (HEADLINE, CLS):
        cfg = load_config(config)
        for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            assert cfg[name].pin_memory
            assert fit_loader_to_machine(cfg[name])['pin_memory'] is gpu


@pytest.mark.parametrize('accumulate,batch', [(None, 32), (4, 16), (2, 8)])
def test_auto_scale_lr_counts_the_accumulated_batch(tmp_path, accumulate, batch):
    cfg = load_config(CLS, {'train_dataloader.batch_size': batch}, pretrained=None)
    base_lr = cfg.optim_wrapper.optimizer.lr
    assert cfg.auto_scale_lr == dict(base_batch_size=64, enable=False)
    prepare_config(cfg, CLS, work_dir=str(tmp_path), auto_scale_lr=True, accumulate=accumulate)
    runner = build_runner(cfg)
    # MMEngine's own steps at the start of train(): the wrapper, then the LR scaling.
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    runner.scale_lr(runner.optim_wrapper, runner.auto_scale_lr)
    assert runner.optim_wrapper._accumulative_counts == (accumulate or 1)
    total = batch * (accumulate or 1)  # one process
    for group in runner.optim_wrapper.optimizer.param_groups:
        assert group['lr'] == pytest.approx(base_lr * total / 64, rel=1e-12)


def test_amp_trains_in_bfloat16_on_the_cpu(tmp_path, monkeypatch):
    from medtrans.engine.optimizers import guarded_optim_wrapper
    from medtrans.registry import DATASETS
    from medtrans.testing import write_synthetic_layout

    monkeypatch.setattr(guarded_optim_wrapper, '_accelerated', lambda: False)  # a CPU host

    data = tmp_path / 'aptos'
    write_synthetic_layout(DATASETS.get('APTOS2019Dataset'), str(data))
    tiny = str(REPO / 'tests/data/configs/tiny_cls_deit_aptos2019.py')
    cfg = load_config(tiny, {'train_cfg.max_iters': 2, 'train_dataloader.num_workers': 0,
                             'train_dataloader.persistent_workers': False},
                      data_root=str(data))
    prepare_config(cfg, tiny, work_dir=str(tmp_path / 'work'), amp=True)
    assert (cfg.optim_wrapper.type, cfg.optim_wrapper.dtype) == ('GuardedAmpOptimWrapper',
                                                                 'bfloat16')
    runner = build_runner(cfg)
    dtypes = []
    runner.model.head.fc.register_forward_hook(lambda m, args, out: dtypes.append(out.dtype))
    before = [p.detach().clone() for p in runner.model.parameters()]
    runner.train()
    # The two training steps ran under CPU autocast; the validation at the end in float32
    # (MMEngine's ValLoop autocasts only when told to).
    assert dtypes == [torch.bfloat16] * 2 + [torch.float32]
    after = list(runner.model.parameters())
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in after)
    assert any(not torch.equal(a, b) for a, b in zip(before, after))
    assert runner.optim_wrapper.loss_scaler.is_enabled() is False
    with pytest.raises(ValueError, match="set dtype='bfloat16'"):
        cfg = load_config(tiny, {'optim_wrapper.dtype': 'float16'}, data_root=str(data))
        prepare_config(cfg, tiny, work_dir=str(tmp_path / 'work16'), amp=True)
        build_runner(cfg).train()


@pytest.mark.slow
@pytest.mark.skipif(not any(__import__('shutil').which(c) for c in ('c++', 'g++', 'clang++')),
                    reason='torch.compile needs a C++ compiler on CPUs')
def test_compiled_training_matches_eager(tmp_path):
    """Two real compiled iterations (inductor, on CPU) end with the eager run's weights.

    Plain SGD at a constant LR: the weights move by the gradients themselves (Adam would scale
    the rounding noise of near-zero gradients up to steps of the LR)."""
    from mmengine.hooks import Hook

    from medtrans.registry import DATASETS
    from medtrans.testing import write_synthetic_layout

    class Initial(Hook):
        def before_train(self, runner):  # after the weights' initialisation
            self.weights = {k: v.detach().clone() for k, v in runner.model.state_dict().items()}

    data = tmp_path / 'aptos'
    write_synthetic_layout(DATASETS.get('APTOS2019Dataset'), str(data))
    tiny = str(REPO / 'tests/data/configs/tiny_cls_deit_aptos2019.py')
    options = {'train_cfg.max_iters': 2, 'train_cfg.val_interval': 10,
               'train_dataloader.num_workers': 0, 'train_dataloader.persistent_workers': False,
               'optim_wrapper.optimizer': dict(type='SGD', lr=0.5, weight_decay=0.0,
                                               fused=False),
               'param_scheduler': []}
    weights = {}
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    for compiled in (False, True):
        cfg = load_config(tiny, options, data_root=str(data))
        prepare_config(cfg, tiny, work_dir=str(tmp_path / str(compiled)), compile=compiled)
        cfg.randomness = dict(seed=0)
        runner = build_runner(cfg)
        start = Initial()
        runner.register_hook(start)
        runner.train()
        initial = start.weights
        weights[compiled] = {k: v.detach().clone() for k, v in runner.model.state_dict().items()}
    assert torch._dynamo.utils.counters['stats']['unique_graphs'] > 0  # really compiled
    assert weights[True].keys() == weights[False].keys() == initial.keys()
    moved = max((weights[False][k] - v).abs().max().item() for k, v in initial.items())
    assert moved > 1e-3
    for key, value in weights[False].items():
        torch.testing.assert_close(weights[True][key], value, rtol=1e-4, atol=1e-5, msg=key)


def test_compile_switch_compiles_the_networks_or_says_why_not(tmp_path, monkeypatch):
    """The methods a training iteration runs are the compiled ones, for classification,
    segmentation (mmseg's heads call ``self.forward``) and DINO (``forward_embedding``, the
    teacher in a ModuleDict); data preprocessors and losses stay eager."""
    from medtrans.registry import DATASETS
    from medtrans.testing import make_synthetic_isic2018, write_synthetic_layout

    aptos, isic = tmp_path / 'aptos', tmp_path / 'isic2018'
    write_synthetic_layout(DATASETS.get('APTOS2019Dataset'), str(aptos))
    make_synthetic_isic2018(isic, num_train=20, num_val=0, size=(64, 64), seed=3)
    configs = REPO / 'tests' / 'data' / 'configs'
    tiny = str(configs / 'tiny_cls_deit_aptos2019.py')
    options = {'train_cfg.max_iters': 1, 'train_cfg.val_interval': 10,
               'train_dataloader.num_workers': 0, 'train_dataloader.persistent_workers': False}
    compiled, called = [], []

    def spy(fn, **kwargs):  # torch.compile, on a method's function (or MMEngine's train_step)
        compiled.append((fn.__name__, kwargs))

        def run(module, *args, **kw):
            called.append((module, fn.__name__))
            return fn(module, *args, **kw)
        return run

    monkeypatch.setattr(torch, 'compile', spy)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)  # the CPU branch
    monkeypatch.setattr(runner_module.shutil, 'which', lambda name: f'/usr/bin/{name}')
    required = {
        'tiny_cls_deit_aptos2019.py': ('backbone.forward', 'head.forward'),
        'tiny_deeplab3_deit_isic2018.py': ('backbone.forward', 'decode_head.forward',
                                           'auxiliary_head.forward'),
        'tiny_dino_deit_isic2018.py': ('backbone.forward_embedding', 'head.forward',
                                       'teacher.backbone.forward_embedding',
                                       'teacher.head.forward'),
    }
    for name, needed in required.items():
        path = str(configs / name)
        data = aptos if 'aptos' in name else isic
        cfg = load_config(path, options, data_root=str(data))
        prepare_config(cfg, path, work_dir=str(tmp_path / name), compile=True)
        assert cfg.compile is True
        compiled.clear()
        called.clear()
        runner = build_runner(cfg)
        model = runner.model
        keys = list(model.state_dict())
        runner.train()
        modules = {id(m): n for n, m in model.named_modules()}
        ran = {f'{modules[id(m)]}.{method}' for m, method in called}
        assert set(needed) <= ran, (name, ran)
        assert not any(n.startswith(('data_preprocessor', 'loss')) for n in ran)
        assert all(kwargs == {} for _, kwargs in compiled)
        assert 'train_step' not in {method for method, _ in compiled}
        assert list(model.state_dict()) == keys
        # A deep copy's compiled methods run on the copy; compiling again changes nothing.
        before = len(compiled)
        assert runner_module.compile_modules(model) == []
        assert len(compiled) == before
        if 'cls' in name:
            clone = copy.deepcopy(model)
            called.clear()
            clone.backbone(torch.zeros(1, 3, 32, 32))
            assert called and all(m is clone.backbone for m, _ in called)

    monkeypatch.setattr(runner_module.shutil, 'which', lambda name: None)
    cfg = load_config(tiny, options, data_root=str(aptos))
    compiled.clear()
    runner = build_runner(prepare_config(cfg, tiny, work_dir=str(tmp_path / 'b'), compile=True))
    assert compiled == []
    log = next(Path(runner.log_dir).glob('*.log')).read_text()
    assert 'compile: skipped, the run goes on uncompiled: no C++ compiler (c++, g++ or ' \
        'clang++) on PATH' in log


def test_training_removes_what_interrupted_writes_left_and_says_so(tmp_path):
    import tempfile

    from medtrans.registry import DATASETS
    from medtrans.testing import write_synthetic_layout

    data, work = tmp_path / 'aptos', tmp_path / 'work'
    write_synthetic_layout(DATASETS.get('APTOS2019Dataset'), str(data))
    (work / 'splits').mkdir(parents=True)
    # A run killed while rewriting its checkpoint and its split record; a file of the user's.
    stale = sorted(tempfile.mkstemp(prefix=f'.{name}.', suffix='.tmp', dir=str(folder))[1]
                   for folder, name in ((work, 'iter_4.pth'),
                                        (work / 'splits', 'aptos2019_seed0.json')))
    (work / 'my_notes.tmp').write_text('kept')
    tiny = str(REPO / 'tests/data/configs/tiny_cls_deit_aptos2019.py')
    cfg = load_config(tiny, {'train_cfg.max_iters': 1, 'train_cfg.val_interval': 10,
                             'train_dataloader.num_workers': 0,
                             'train_dataloader.persistent_workers': False},
                      data_root=str(data))
    runner = build_runner(prepare_config(cfg, tiny, work_dir=str(work)))
    runner.train()
    assert not any(Path(path).exists() for path in stale)
    assert (work / 'my_notes.tmp').read_text() == 'kept'
    assert not list(work.rglob('.*.tmp'))
    log = next(Path(runner.log_dir).glob('*.log')).read_text()
    assert f'Removed 2 temporary file(s) that interrupted writes of this run left: ' \
        f'{", ".join(stale)}' in log
