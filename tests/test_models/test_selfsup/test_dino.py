"""The DINO algorithm: teacher initialisation and EMA, the loss of a multi-crop batch, any
backbone through its embedding."""
import pytest
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

from medtrans.models.selfsup import DINO
from medtrans.models.utils import save_state_dict
from medtrans.setup_env import register_all_modules

from ..test_losses.test_dino_loss import reference_loss

HEAD = dict(type='DINOHead', out_channels=48, hidden_channels=32, bottleneck_channels=16)


def tiny_dino(backbone=None, **kwargs):
    register_all_modules()
    backbone = backbone or dict(type='DeiT', arch='deit-tiny', img_size=32)
    model = DINO(backbone=backbone, head=HEAD, **kwargs)
    model.init_weights()
    return model


def multi_crop(batch=3, global_size=32, local_size=16, num_local=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return ([torch.randn(batch, 3, global_size, global_size, generator=generator)
             for _ in range(2)] +
            [torch.randn(batch, 3, local_size, local_size, generator=generator)
             for _ in range(num_local)])


def test_teacher_starts_equal_to_the_student_and_is_not_trained():
    model = tiny_dino()
    student = {**{f'backbone.{k}': v for k, v in model.backbone.state_dict().items()},
               **{f'head.{k}': v for k, v in model.head.state_dict().items()}}
    teacher = {k[len('teacher.'):]: v for k, v in model.state_dict().items()
               if k.startswith('teacher.')}
    assert teacher.keys() == student.keys()
    assert all(torch.equal(teacher[k], student[k]) for k in student)
    assert not any(p.requires_grad for p in model.teacher.parameters())


def test_teacher_starts_with_the_students_buffers_from_the_pretrained_file(tmp_path):
    """A CNN teacher starts with the running statistics the student read from its ImageNet
    file (DINO's teacher.load_state_dict(student.state_dict())), not with 0 and 1."""
    torch.manual_seed(0)
    imagenet = timm.create_model('resnet18', pretrained=False)
    with torch.no_grad():
        for module in imagenet.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2.0)
                module.num_batches_tracked.fill_(7)
    path = str(tmp_path / 'resnet18.safetensors')
    save_state_dict(imagenet.state_dict(), path)

    model = tiny_dino(backbone=dict(type='TimmResNet', depth=18, pretrained=path))
    state = model.state_dict()
    buffers = [name for name, _ in model.backbone.named_buffers()]
    assert len(buffers) == 3 * 20  # mean, variance and count of ResNet-18's 20 batch norms
    for name in buffers:
        # The student read the file's statistics ...
        expected = imagenet.state_dict()[name[len('timm_model.'):]]
        assert torch.equal(state[f'backbone.{name}'], expected), name
        # ... and the teacher holds them too.
        assert torch.equal(state[f'teacher.backbone.{name}'], expected), name
    for name, value in state.items():
        if name.startswith(('backbone.', 'head.')):
            assert torch.equal(state[f'teacher.{name}'], value), name


def test_loss_is_dino_loss_of_teacher_and_student_outputs():
    model = tiny_dino(teacher_temp=0.05)
    with torch.no_grad():  # make the teacher differ from the student
        for p in model.teacher.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.train()
    views = multi_crop()
    outputs = model.loss(views)
    loss = outputs['loss']

    def project(part, view):
        return part['head'](part['backbone'].forward_embedding(view))

    student = {'backbone': model.backbone, 'head': model.head}
    with torch.no_grad():
        teacher_out = [project(model.teacher, v) for v in views[:2]]
        student_out = [project(student, v) for v in views]
    expected = reference_loss(student_out, teacher_out, torch.zeros(1, 48), 0.05, 0.1)
    torch.testing.assert_close(loss.double(), expected, rtol=1e-5, atol=1e-6)
    # The teacher's entropy is logged beside the loss, not trained on.
    targets = [F.softmax(t.double() / 0.05, dim=-1) for t in teacher_out]
    entropy = torch.stack([-(q * q.log()).sum(-1) for q in targets]).mean()
    torch.testing.assert_close(outputs['teacher_entropy'].double(), entropy, rtol=1e-5,
                               atol=1e-6)
    total, log_vars = model.parse_losses(outputs)
    assert torch.equal(total, loss) and set(log_vars) == {'loss', 'teacher_entropy'}
    loss.backward()
    assert all(p.grad is not None for p in model.backbone.parameters())
    assert all(p.grad is None for p in model.teacher.parameters())


def test_update_teacher_is_an_ema_of_the_student():
    model = tiny_dino()
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.add_(torch.randn_like(p))
    names = [n for n, _ in model.named_parameters() if not n.startswith('teacher.')]
    before = {n: p.clone() for n, p in model.named_parameters()}
    model.update_teacher(0.9)
    params = dict(model.named_parameters())
    for name in names:
        expected = 0.9 * before[f'teacher.{name}'] + 0.1 * before[name]
        torch.testing.assert_close(params[f'teacher.{name}'], expected)
        assert torch.equal(params[name], before[name])


def test_teacher_runs_without_stochastic_depth_and_with_batch_statistics():
    model = tiny_dino(backbone=dict(type='DeiT', arch='deit-tiny', img_size=32,
                                    drop_path_rate=0.5))
    model.train()
    view = multi_crop()[0]
    teacher = model.teacher['backbone']
    assert not teacher.training and model.backbone.training
    torch.manual_seed(1)
    first = teacher.forward_embedding(view)
    torch.manual_seed(2)
    assert torch.equal(teacher.forward_embedding(view), first)
    torch.manual_seed(1)
    student_first = model.backbone.forward_embedding(view)
    torch.manual_seed(2)
    assert not torch.equal(model.backbone.forward_embedding(view), student_first)

    cnn = tiny_dino(backbone=dict(type='TimmResNet', depth=18))
    norms = [m for m in cnn.teacher.modules() if isinstance(m, nn.BatchNorm2d)]
    cnn.train()
    assert norms and all(m.training for m in norms)
    cnn.eval()
    assert not any(m.training for m in norms)


def test_any_embedding_backbone_works():
    model = tiny_dino(backbone=dict(type='TimmResNet', depth=18))
    assert model.head.in_channels == 512  # the backbone's num_features
    model.train()
    loss = model.loss(multi_crop(batch=2, global_size=64, local_size=32))['loss']
    loss.backward()
    assert torch.isfinite(loss)


def test_extract_feat_is_the_teachers_embedding():
    model = tiny_dino()
    model.eval()
    view = multi_crop()[0]
    with torch.no_grad():
        with_teacher = model.teacher['backbone'].forward_embedding(view)
        (feat, ) = model.extract_feat(view)
    assert torch.equal(feat, with_teacher)


def test_backbone_without_embedding_is_refused():
    with pytest.raises(TypeError, match='forward_embedding'):
        DINO(backbone=nn.Conv2d(3, 8, 3), head=HEAD)


def test_mismatched_widths_are_refused():
    register_all_modules()
    backbone = dict(type='DeiT', arch='deit-tiny', img_size=32)
    with pytest.raises(ValueError, match='num_features=192'):
        DINO(backbone=backbone, head=dict(HEAD, in_channels=100))
    with pytest.raises(ValueError, match='out_channels'):
        DINO(backbone=backbone, head=HEAD, loss=dict(type='DINOLoss', out_channels=10))


@pytest.mark.parametrize('views,match', [
    (multi_crop()[:2], 'list of views'),
    (torch.randn(2, 3, 32, 32), 'list of views'),
    ([torch.randn(2, 3, 32, 32), torch.randn(3, 3, 32, 32), torch.randn(2, 3, 16, 16)],
     'same batch size'),
])
def test_bad_views_are_refused(views, match):
    model = tiny_dino()
    with pytest.raises(ValueError, match=match):
        model.loss(views)
