"""Every private name ``medtrans.utils.upstream`` reaches is still there and still means the same.

Each test is named after the adapter function it pins, and its failure message names it: an
upgrade of mmengine, timm or torch that breaks one fails here first.
"""
import inspect
import warnings

import pytest
import timm
import torch
from mmengine.dataset import BaseDataset
from mmengine.hooks import CheckpointHook
from mmengine.model import BaseModel
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.optim.optimizer import amp_optimizer_wrapper
from mmengine.runner import IterBasedTrainLoop, Runner
from torch import nn
from torch.utils.data import DataLoader

from medtrans.utils import upstream


def _pinned(name: str, ok: bool, what: str) -> None:
    assert ok, (f'medtrans.utils.upstream.{name}: {what} in the installed versions; the adapter '
                'function (and its docstring) must follow the upstream change.')


class _Toy(BaseModel):

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 1)

    def forward(self, inputs, mode='tensor'):
        return dict(loss=self.linear(inputs.float()).mean())


class _CountedLoader(DataLoader):
    """A DataLoader that counts its passes (``iter`` calls)."""

    passes = 0

    def __iter__(self):
        self.passes += 1
        return super().__iter__()


def _loader() -> dict:
    return dict(dataset=[dict(inputs=torch.ones(1))] * 4, batch_size=2,
                sampler=dict(type='DefaultSampler', shuffle=False),
                collate_fn=dict(type='default_collate'))


def _runner(work_dir, name: str, **kwargs) -> Runner:
    return Runner(model=_Toy(), work_dir=str(work_dir), experiment_name=name,
                  train_dataloader=_loader(),
                  train_cfg=dict(type='IterBasedTrainLoop', max_iters=1),
                  optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)), **kwargs)


@pytest.fixture(scope='module')
def runner(tmp_path_factory):
    return _runner(tmp_path_factory.mktemp('work'), 'upstream',
                   randomness=dict(seed=3, diff_rank_seed=True), load_from='weights.pth')


def test_every_adapter_function_is_pinned_here():
    tests = {name[len('test_'):] for name in globals() if name.startswith('test_')}
    missing = sorted(set(upstream.__all__) - tests)
    assert not missing, f'medtrans.utils.upstream functions without a test here: {missing}'


def test_build_loop_dataloader(runner):
    _pinned('build_loop_dataloader', runner._randomness_cfg.get('diff_rank_seed') is True,
            "Runner._randomness_cfg no longer holds the 'randomness' argument")
    loader = upstream.build_loop_dataloader(runner, _loader())
    assert isinstance(loader, DataLoader) and len(loader) == 2
    assert upstream.build_loop_dataloader(runner, loader) is loader


def test_train_loop_is_config(tmp_path):
    fresh = _runner(tmp_path, 'upstream-fresh')
    _pinned('train_loop_is_config', upstream.train_loop_is_config(fresh),
            'Runner._train_loop is no longer the train config before the loop is built')
    assert fresh.train_loop is not None
    assert not upstream.train_loop_is_config(fresh)


def test_train_loop_built(tmp_path):
    runner = _runner(tmp_path, 'built')
    _pinned('train_loop_built', not upstream.train_loop_built(runner),
            'Runner._train_loop is not the config before train()')
    runner.train()
    _pinned('train_loop_built', upstream.train_loop_built(runner),
            'Runner._train_loop is not the built loop after train()')
    assert not upstream.train_loop_built(Runner(model=_Toy(), work_dir=str(tmp_path / 'none'),
                                                experiment_name='no_train'))


def test_runner_load_from(runner):
    _pinned('runner_load_from', getattr(runner, '_load_from', None) == 'weights.pth',
            "Runner._load_from no longer holds the 'load_from' argument")
    assert upstream.runner_load_from(runner) == 'weights.pth'


def test_save_checkpoint_at_step():
    method = getattr(CheckpointHook, '_save_checkpoint_with_step', None)
    _pinned('save_checkpoint_at_step', method is not None,
            'CheckpointHook._save_checkpoint_with_step is gone')
    params = list(inspect.signature(method).parameters)
    _pinned('save_checkpoint_at_step', params == ['self', 'runner', 'step', 'meta'],
            f'CheckpointHook._save_checkpoint_with_step takes {params}')


def test_started_dataloader_pass():
    loader = _CountedLoader(list(range(6)), batch_size=2)
    loop = IterBasedTrainLoop(runner=None, dataloader=loader, max_iters=3)
    _pinned('started_dataloader_pass', loader.passes == 1,
            f"IterBasedTrainLoop.__init__ started {loader.passes} passes, not 1")
    first_pass = upstream.started_dataloader_pass(loop)
    batches = [batch.tolist() for batch in first_pass]  # one pass, which ends
    _pinned('started_dataloader_pass', batches == [[0, 1], [2, 3], [4, 5]],
            'IterBasedTrainLoop.dataloader_iterator._iterator is not the started pass '
            f'(it drew {batches})')
    assert loader.passes == 1


@pytest.mark.parametrize('loss_scale,expected', [('dynamic', None), (512., 512.)])
def test_amp_static_loss_scale(loss_scale, expected, monkeypatch):
    # AmpOptimWrapper refuses to be built without an accelerator; on a CPU its CUDA GradScaler
    # then disables itself (with a warning), which does not matter here.
    monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available', lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        wrapper = AmpOptimWrapper(optimizer=torch.optim.SGD(nn.Linear(1, 1).parameters(), 0.1),
                                  loss_scale=loss_scale)
    _pinned('amp_static_loss_scale', hasattr(wrapper, '_scale_update_param'),
            'AmpOptimWrapper._scale_update_param is gone')
    _pinned('amp_static_loss_scale', upstream.amp_static_loss_scale(wrapper) == expected,
            f'AmpOptimWrapper._scale_update_param is not the static loss_scale {loss_scale!r}')


def test_accumulative_counts():
    wrapper = OptimWrapper(torch.optim.SGD(nn.Linear(1, 1).parameters(), 0.1),
                           accumulative_counts=3)
    _pinned('accumulative_counts', getattr(wrapper, '_accumulative_counts', None) == 3,
            'OptimWrapper._accumulative_counts no longer holds accumulative_counts')
    assert upstream.accumulative_counts(wrapper) == 3
    assert upstream.accumulative_counts(object()) == 1


def test_dataset_metainfo():

    class _Dataset(BaseDataset):
        METAINFO = dict(classes=('a', 'b'))

        def load_data_list(self):
            upstream.dataset_metainfo(self)['classes'] = ('c', )
            return [dict(label=0)]

    dataset = _Dataset(lazy_init=True)
    _pinned('dataset_metainfo', isinstance(getattr(dataset, '_metainfo', None), dict),
            'BaseDataset._metainfo is not the dataset\'s metainfo dict')
    dataset.full_init()
    _pinned('dataset_metainfo', dataset.metainfo['classes'] == ('c', ),
            'BaseDataset.metainfo does not read BaseDataset._metainfo')


def test_vit_pos_embed():
    vit = timm.models.VisionTransformer(img_size=32, patch_size=16, embed_dim=8, depth=1,
                                        num_heads=2, num_classes=0).eval()
    method = getattr(vit, '_pos_embed', None)
    _pinned('vit_pos_embed', method is not None, 'timm VisionTransformer._pos_embed is gone')
    params = list(inspect.signature(method).parameters)
    _pinned('vit_pos_embed', params == ['x'], f'VisionTransformer._pos_embed takes {params}')
    images = torch.randn(2, 3, 32, 32)
    tokens = upstream.vit_pos_embed(vit, vit.patch_embed(images))
    assert tokens.shape == (2, 1 + 4, 8)
    with torch.no_grad():
        steps = vit.norm(vit.blocks(vit.norm_pre(vit.patch_drop(tokens))))
        _pinned('vit_pos_embed', torch.allclose(steps, vit.forward_features(images)),
                'VisionTransformer.forward_features is no longer patch_embed, _pos_embed, '
                'patch_drop, norm_pre, blocks, norm')


def test_is_batch_norm():
    batch_norms = [nn.BatchNorm1d(2), nn.BatchNorm2d(2), nn.BatchNorm3d(2), nn.SyncBatchNorm(2),
                   nn.LazyBatchNorm2d()]
    _pinned('is_batch_norm', all(upstream.is_batch_norm(m) for m in batch_norms),
            'torch.nn.modules.batchnorm._BatchNorm is not the base of every batch norm')
    assert not any(upstream.is_batch_norm(m)
                   for m in (nn.LayerNorm(2), nn.GroupNorm(1, 2), nn.InstanceNorm2d(2)))


def test_BatchNormBase():
    _pinned('BatchNormBase', all(issubclass(cls, upstream.BatchNormBase) for cls in (
        nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)),
            'torch.nn.modules.batchnorm._BatchNorm is not the base of every batch norm')
    _pinned('BatchNormBase',
            'self._check_input_dim(input)' in inspect.getsource(upstream.BatchNormBase.forward),
            '_BatchNorm.forward no longer checks the input through _check_input_dim')
    _pinned('BatchNormBase', not issubclass(upstream.BatchNormBase, nn.SyncBatchNorm),
            '_BatchNorm is a SyncBatchNorm, which DDP refuses on CPUs')


def test_foreach_norm():
    _pinned('foreach_norm', hasattr(torch, '_foreach_norm'), 'torch._foreach_norm is gone')
    tensors = [torch.tensor([3., -4.]), torch.tensor([[1., -2.]])]
    assert [n.item() for n in upstream.foreach_norm(tensors)] == pytest.approx([5., 5 ** .5])
    assert [n.item() for n in upstream.foreach_norm(tensors, float('inf'))] == [4., 2.]


def test_foreach_mul_():
    _pinned('foreach_mul_', hasattr(torch, '_foreach_mul_'), 'torch._foreach_mul_ is gone')
    tensors = [torch.ones(2), torch.ones(3)]
    upstream.foreach_mul_(tensors, 2.)
    upstream.foreach_mul_(tensors, [torch.tensor(3.), torch.tensor(.5)])
    assert tensors[0].tolist() == [6., 6.] and tensors[1].tolist() == [1., 1., 1.]


def test_foreach_add_():
    _pinned('foreach_add_', hasattr(torch, '_foreach_add_'), 'torch._foreach_add_ is gone')
    tensors = [torch.ones(2), torch.zeros(1)]
    upstream.foreach_add_(tensors, [torch.full((2, ), 2.), torch.ones(1)], alpha=.5)
    assert tensors[0].tolist() == [2., 2.] and tensors[1].tolist() == [.5]



def test_RUNNER_OVERRIDES():
    from medtrans.engine import MedtransRunner

    expected = dict(_init_model_weights=['self'], _maybe_compile=['self', 'target'])
    for name in upstream.RUNNER_OVERRIDES:
        method = getattr(Runner, name, None)
        _pinned('RUNNER_OVERRIDES', method is not None
                and list(inspect.signature(method).parameters) == expected[name],
                f'Runner.{name} is gone or takes other arguments')
    train = inspect.getsource(Runner.train)
    order = [train.find(call) for call in ('self._init_model_weights()', 'self.load_or_resume()',
                                           "self._maybe_compile('train_step')")]
    _pinned('RUNNER_OVERRIDES', -1 < order[0] < order[1] < order[2],
            'Runner.train no longer initialises, resumes and compiles in that order')
    # Every protected Runner method MedtransRunner overrides is listed (and so pinned) here.
    overridden = sorted(name for name in vars(MedtransRunner)
                        if name.startswith('_') and not name.startswith('__')
                        and hasattr(Runner, name))
    assert overridden == sorted(upstream.RUNNER_OVERRIDES)


def test_CHECKPOINT_HOOK_OVERRIDES():
    from mmengine.hooks import CheckpointHook

    from medtrans.engine.hooks import CrashSafeCheckpointHook

    method = getattr(CheckpointHook, '_save_checkpoint_with_step', None)
    _pinned('CHECKPOINT_HOOK_OVERRIDES', method is not None
            and list(inspect.signature(method).parameters) == ['self', 'runner', 'step', 'meta'],
            'CheckpointHook._save_checkpoint_with_step is gone or takes other arguments')
    source = inspect.getsource(method)
    # The override relies on max_keep_ckpts <= 0 turning MMEngine's rotation off, and on the
    # rotation coming before the write.
    rotation, write = source.find('if self.max_keep_ckpts > 0:'), source.find(
        'runner.save_checkpoint(')
    _pinned('CHECKPOINT_HOOK_OVERRIDES', -1 < rotation < write,
            'CheckpointHook._save_checkpoint_with_step no longer rotates under '
            '"if self.max_keep_ckpts > 0:" before it saves')
    overridden = sorted(name for name in vars(CrashSafeCheckpointHook)
                        if name.startswith('_') and not name.startswith('__')
                        and hasattr(CheckpointHook, name))
    assert overridden == sorted(upstream.CHECKPOINT_HOOK_OVERRIDES)
