"""DINOLoss against DINO's own formulation, written out in loops on fixed tensors."""
import pytest
import torch
import torch.nn.functional as F

from medtrans.models.losses import DINOLoss


def reference_loss(student, teacher, center, teacher_temp, student_temp):
    """DINO's DINOLoss.forward (facebookresearch/dino), in float64, on per-view lists."""
    student = [s.double() / student_temp for s in student]
    teacher = [F.softmax((t.double() - center.double()) / teacher_temp, dim=-1) for t in teacher]
    total, terms = 0., 0
    for i, q in enumerate(teacher):
        for j, s in enumerate(student):
            if i == j:
                continue
            total = total + torch.sum(-q * F.log_softmax(s, dim=-1), dim=-1).mean()
            terms += 1
    return total / terms


def views(num, batch=5, width=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, width, generator=generator) * 3 for _ in range(num)]


@pytest.mark.parametrize('num_global,num_views', [(2, 2), (2, 6), (1, 3), (3, 5)])
@pytest.mark.parametrize('teacher_temp', [0.04, 0.07])
def test_loss_equals_reference(num_global, num_views, teacher_temp):
    loss_fn = DINOLoss(out_channels=32, student_temp=0.1, center_momentum=0.9)
    loss_fn.center.copy_(torch.randn(1, 32, generator=torch.Generator().manual_seed(9)))
    center = loss_fn.center.clone()
    student, teacher = views(num_views, seed=1), views(num_global, seed=2)
    loss = loss_fn(student, teacher, teacher_temp)
    expected = reference_loss(student, teacher, center, teacher_temp, 0.1)
    torch.testing.assert_close(loss.double(), expected, rtol=1e-5, atol=1e-6)


def test_gradient_reaches_only_the_student():
    loss_fn = DINOLoss(out_channels=32)
    student = [v.requires_grad_() for v in views(4, seed=3)]
    teacher = [v.requires_grad_() for v in views(2, seed=4)]
    loss_fn(student, teacher, 0.04).backward()
    assert all(s.grad is not None and s.grad.abs().sum() > 0 for s in student)
    assert all(t.grad is None for t in teacher)


def test_centre_moves_to_the_mean_teacher_output_after_the_loss():
    loss_fn = DINOLoss(out_channels=32, center_momentum=0.9)
    teachers = [views(2, seed=5), views(2, seed=6)]
    expected = torch.zeros(1, 32, dtype=torch.float64)
    for teacher in teachers:
        loss_fn(views(3, seed=7), teacher, 0.04)
        # DINO: center = center * m + sum(teacher) / len(teacher) * (1 - m), over both views.
        batch_center = torch.cat(teacher).double().sum(0, keepdim=True) / (2 * 5)
        expected = expected * 0.9 + batch_center * 0.1
        torch.testing.assert_close(loss_fn.center.double(), expected, rtol=1e-6, atol=1e-7)


def test_loss_uses_the_centre_from_before_its_update():
    loss_fn = DINOLoss(out_channels=32)
    student, teacher = views(4, seed=8), views(2, seed=9)
    first = loss_fn(student, teacher, 0.04)
    expected = reference_loss(student, teacher, torch.zeros(1, 32), 0.04, 0.1)
    torch.testing.assert_close(first.double(), expected, rtol=1e-5, atol=1e-6)
    assert loss_fn.center.abs().sum() > 0


def test_centre_is_saved_in_the_state_dict():
    loss_fn = DINOLoss(out_channels=32)
    loss_fn(views(3), views(2), 0.04)
    restored = DINOLoss(out_channels=32)
    restored.load_state_dict(loss_fn.state_dict())
    assert torch.equal(restored.center, loss_fn.center)


@pytest.mark.parametrize('student,teacher,match', [
    (views(1), views(1), 'at least 2 student views'),
    (views(3, width=16), views(2), 'must both be'),
    (views(3, batch=4), views(2), 'must both be'),
])
def test_bad_views_are_refused(student, teacher, match):
    with pytest.raises(ValueError, match=match):
        DINOLoss(out_channels=32)(student, teacher, 0.04)


@pytest.mark.parametrize('kwargs', [dict(student_temp=0), dict(center_momentum=1.5)])
def test_bad_arguments_are_refused(kwargs):
    with pytest.raises(ValueError):
        DINOLoss(**kwargs)


def test_teacher_entropy_is_that_of_the_targets_before_the_centre_moves():
    loss_fn = DINOLoss(out_channels=32)
    loss_fn.center.copy_(torch.randn(1, 32, generator=torch.Generator().manual_seed(9)))
    teacher = views(2, seed=8)
    entropy = loss_fn.teacher_entropy(teacher, 0.04)
    p = [F.softmax((t.double() - loss_fn.center.double()) / 0.04, dim=-1) for t in teacher]
    expected = torch.stack([-(q * q.log()).sum(-1) for q in p]).mean()
    torch.testing.assert_close(entropy.double(), expected, rtol=1e-5, atol=1e-6)
    # Collapse to uniform targets: every sample's output equals the centre.
    uniform = [loss_fn.center.expand(5, 32).clone() for _ in range(2)]
    torch.testing.assert_close(loss_fn.teacher_entropy(uniform, 0.04),
                               torch.tensor(32.).log())
