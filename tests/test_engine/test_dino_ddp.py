"""DINO under DDP: 2 gloo processes with 2 images each end with the teacher and centre of one
process with the same 4-image batches, and both processes hold the same teacher and centre;
with a ResNet, the student's and the teacher's batch norms too (SyncBN, as DINO).

The views are deterministic (resizes and flips), the order fixed and stochastic depth off, so
the two runs see the same batches: the union of the two processes' batches is the single
process's batch at every iteration. What DDP changes is then only where the sums are taken:
gradients are averaged across processes by DDP, the centre's batch mean by DINOLoss's
all-reduce, the batch norms' statistics by SyncBN's.
"""
import pytest
import timm
import torch

from medtrans.models.utils import save_state_dict
from medtrans.registry import DATASETS
from medtrans.testing import make_synthetic_isic2018, write_synthetic_layout
from test_engine.train_tool import REPO, run_train_tool

TINY_DINO = REPO / 'tests' / 'data' / 'configs' / 'tiny_dino_deit_isic2018.py'
GLOBAL_BATCH = 4

pytestmark = pytest.mark.slow

CONFIG = f"""
_base_ = ['{TINY_DINO}']
custom_imports = dict(imports=['test_engine.dino_dump_hook'], allow_failed_imports=False)
model = dict(backbone=dict(drop_path_rate=0.0))
views = dict(
    type='mmpretrain.MultiView',
    num_views=[1, 1, 1, 1],
    transforms=[
        [dict(type='Resize', scale=(32, 32), keep_ratio=False)],
        [dict(type='Resize', scale=(32, 32), keep_ratio=False), dict(type='RandomFlip', prob=1.)],
        [dict(type='Resize', scale=(16, 16), keep_ratio=False)],
        [dict(type='Resize', scale=(16, 16), keep_ratio=False),
         dict(type='RandomFlip', prob=1., direction='vertical')],
    ])
train_dataloader = dict(
    num_workers=0, persistent_workers=False, sampler=dict(shuffle=False),
    dataset=dict(pipeline=[dict(type='LoadImageStrict'), views,
                           dict(type='mmpretrain.PackInputs')]))
train_cfg = dict(max_iters=6)
custom_hooks = [
    dict(type='SafeResumeHook'),
    dict(type='DINOHook', warmup_teacher_temp=0.04, teacher_temp=0.07,
         warmup_teacher_temp_epochs=2, momentum=0.99, freeze_last_layer_epochs=1, clip_grad=3.0),
    dict(type='DumpDINOStateHook'),
]
"""


def _train(config, data_root, work_dir, processes, port=None):
    options = ['--cfg-options', f'train_dataloader.dataset.data_root={data_root}',
               f'train_dataloader.batch_size={GLOBAL_BATCH // processes}']
    run_train_tool(config, work_dir, options, processes, port)
    return [torch.load(work_dir / f'rank{rank}.pth', weights_only=True)
            for rank in range(processes)]


def test_two_processes_match_one_with_the_same_global_batch(free_port, tmp_path):
    data_root = tmp_path / 'ISIC2018'
    make_synthetic_isic2018(data_root, num_train=20, num_val=0, size=(48, 48), seed=5)
    config = tmp_path / 'dino_ddp.py'
    config.write_text(CONFIG)
    (single, ) = _train(config, data_root, tmp_path / 'one', processes=1)
    rank0, rank1 = _train(config, data_root, tmp_path / 'two', processes=2, port=free_port)

    # Every process holds the same teacher and centre, bit for bit.
    assert torch.equal(rank0['center'], rank1['center'])
    assert rank0['teacher'].keys() == rank1['teacher'].keys()
    for key, value in rank0['teacher'].items():
        assert torch.equal(value, rank1['teacher'][key]), key

    # And they are those of the single process, up to the order of float sums. The attention
    # keys' bias has a gradient that is zero up to rounding (softmax ignores a shift shared by
    # all keys), which Adam scales up to steps of about the learning rate: there the two runs'
    # rounding differs by up to 1.06e-6 (fused AdamW, measured), hence atol 2e-6 there.
    assert single['center'].abs().sum() > 0
    torch.testing.assert_close(rank0['center'], single['center'], rtol=1e-4, atol=1e-6)
    moved = 0
    for key, value in single['teacher'].items():
        atol = 2e-6 if key.endswith('attn.qkv.bias') else 1e-6
        torch.testing.assert_close(rank0['teacher'][key], value, rtol=1e-4, atol=atol, msg=key)
        moved += not torch.equal(value, rank0['teacher'][key])
    assert moved  # the runs really differ in where sums are taken



RESNET_DINO = REPO / 'configs' / 'dino' / 'dino_resnet50_in1k_4xb64_300e_aptos2019-224-96.py'

# The shipped ResNet-50 DINO config (SyncBN by its model base), shrunk: a narrow head, views of
# 64 and 32 pixels, 2 epochs of one iteration on the 6 images of the synthetic APTOS layout
# (each process's share is 3: one batch of 2; the single process's batch is their 4), no k-NN
# validation, no checkpoint. SGD at a constant LR, not the study's AdamW: an update
# proportional to the gradient compares the gradients, where AdamW's first steps are +-LR
# whatever the gradient's size, so an element whose gradient is within rounding of 0 may step
# either way.
RESNET_CONFIG = """
_base_ = ['{config}']
custom_imports = dict(imports=['test_engine.dino_dump_hook'], allow_failed_imports=False)
model = dict(backbone=dict(pretrained='{pretrained}'),
             head=dict(out_channels=64, hidden_channels=32, bottleneck_channels=16))
views = dict(
    type='mmpretrain.MultiView',
    num_views=[1, 1, 1, 1],
    transforms=[
        [dict(type='Resize', scale=(64, 64), keep_ratio=False)],
        [dict(type='Resize', scale=(64, 64), keep_ratio=False), dict(type='RandomFlip', prob=1.)],
        [dict(type='Resize', scale=(32, 32), keep_ratio=False)],
        [dict(type='Resize', scale=(32, 32), keep_ratio=False),
         dict(type='RandomFlip', prob=1., direction='vertical')],
    ])
train_dataloader = dict(
    num_workers=0, persistent_workers=False, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(split='all', pipeline=[dict(type='LoadImageStrict'), views,
                                        dict(type='mmpretrain.PackInputs')]))
train_cfg = dict(max_epochs=2)
val_cfg = None
val_dataloader = None
val_evaluator = None
auto_scale_lr = dict(enable=False)
optim_wrapper = dict(optimizer=dict(_delete_=True, type='SGD', lr=0.1, momentum=0.9))
param_scheduler = []
default_hooks = dict(checkpoint=dict(save_last=False))
custom_hooks = _base_.custom_hooks + [dict(type='DumpDINOStateHook')]
"""


def _imagenet_like_resnet50(path):
    """A ResNet-50 weight file whose batch norms hold running statistics other than 0 and 1
    (as an ImageNet file's), and whose blocks' last norms are not zero (timm's initialisation,
    which would leave the blocks' other weights without gradient)."""
    torch.manual_seed(0)
    model = timm.create_model('resnet50', pretrained=False)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.02 * torch.randn_like(param))
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
    save_state_dict(model.state_dict(), str(path))
    return model.state_dict()


def test_resnet_with_syncbn_matches_one_process_with_the_same_global_batch(free_port, tmp_path):
    layout = write_synthetic_layout(DATASETS.get('APTOS2019Dataset'), str(tmp_path / 'aptos'))
    assert layout.dataset_cfg['split'] == 'all' and len(layout.images) == 6
    imagenet = _imagenet_like_resnet50(tmp_path / 'resnet50.safetensors')
    config = tmp_path / 'dino_resnet_ddp.py'
    config.write_text(RESNET_CONFIG.format(config=RESNET_DINO,
                                           pretrained=tmp_path / 'resnet50.safetensors'))
    (single, ) = _train(config, layout.root, tmp_path / 'one', processes=1)
    rank0, rank1 = _train(config, layout.root, tmp_path / 'two', processes=2, port=free_port)

    # Both runs start from the file, the teacher's statistics included.
    for run in (single, rank0):
        for key, value in imagenet.items():
            if not key.startswith('fc.'):
                for model in ('backbone', 'teacher.backbone'):
                    assert torch.equal(run['initial'][f'{model}.timm_model.{key}'], value)
    initial, single, rank0, rank1 = single['initial'], single['model'], rank0['model'], \
        rank1['model']

    # Every process holds the same student, teacher and centre, batch-norm statistics
    # included, bit for bit.
    assert rank0.keys() == rank1.keys() == single.keys()
    for key, value in rank0.items():
        assert torch.equal(value, rank1[key]), key

    # And they are the single process's, up to the order of float sums (without SyncBN,
    # per-process statistics make the updates differ by more than their own size):
    # - the running statistics of the student (4 batches of views) and the teacher (2);
    norms = [key for key in single if key.endswith(('running_mean', 'running_var'))]
    assert len(norms) == 2 * 2 * 53  # student and teacher, ResNet-50's 53 batch norms
    for key in norms:
        torch.testing.assert_close(rank0[key], single[key], rtol=1e-5, atol=1e-6, msg=key)
        # They moved from the file's by far more than that.
        assert (single[key] - initial[key]).abs().max() > 1e-3, key
    # - the weights after two SGD steps, and the teacher's EMA of them, to 1e-3 of the
    #   tensor's largest update (float32 rounding of the values aside); the student moved.
    for key, value in single.items():
        if key not in norms and value.is_floating_point():
            update = (value - initial[key]).abs().max().item()
            torch.testing.assert_close(rank0[key], value, rtol=1e-6, atol=1e-3 * update,
                                       msg=key)
    assert all((single[key] - initial[key]).abs().max() > 1e-4
               for key in single if key.startswith('backbone.') and key.endswith('weight'))
    for key in single:
        if key.endswith('num_batches_tracked'):
            assert rank0[key] == single[key] == (4 if key.startswith('backbone.') else 2)
