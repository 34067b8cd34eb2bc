"""DINO's self-distillation loss: cross-entropy between the centred, sharpened teacher and the
student over every pair of different views."""
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import all_reduce, get_world_size

from medtrans.registry import MODELS

__all__ = ['DINOLoss']


@MODELS.register_module()
class DINOLoss(nn.Module):
    """DINO loss with centring of the teacher's outputs.

    Paper: `Emerging Properties in Self-Supervised Vision Transformers
    <https://arxiv.org/abs/2104.14294>`_ (DINO).

    For teacher views ``i`` (the global crops) and student views ``j`` (global crops first,
    then local crops), with ``c`` the centre, ``T_t`` the teacher's and ``T_s`` the student's
    temperature::

        P_t^i = softmax((t_i - c) / T_t)    P_s^j = softmax(s_j / T_s)
        loss  = mean over pairs (i, j), i != j, of  mean over the batch of  -sum_k P_t^i log P_s^j

    Student view ``j < num_global`` is the same crop as teacher view ``j`` and is not paired with
    it. After the loss, the centre moves towards the mean teacher output of the whole batch,
    over every process (an all-reduce): ``c <- m c + (1 - m) mean(t)``. The loss uses the centre
    from before that update, as DINO does. The centre is a buffer, so it is saved in and
    restored from checkpoints.

    :meth:`teacher_entropy` is the mean entropy of the ``P_t^i``, DINO's collapse monitor (paper,
    section 5.3): ``ln K`` when the teacher's targets are uniform (centring has won), near 0
    when they are one-hot (sharpening has won).

    Args:
        out_channels (int): Width K of the head's outputs. Defaults to 65536.
        student_temp (float): Student temperature ``T_s``. Defaults to 0.1.
        center_momentum (float): Centre momentum ``m``. Defaults to 0.9.
    """

    def __init__(self,
                 out_channels: int = 65536,
                 student_temp: float = 0.1,
                 center_momentum: float = 0.9) -> None:
        super().__init__()
        if student_temp <= 0:
            raise ValueError(f'DINOLoss: student_temp must be > 0, got {student_temp!r}')
        if not 0 <= center_momentum <= 1:
            raise ValueError(f'DINOLoss: center_momentum must be in [0, 1], got '
                             f'{center_momentum!r}')
        self.out_channels = out_channels
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.register_buffer('center', torch.zeros(1, out_channels))

    def forward(self, student_outputs: Sequence[torch.Tensor],
                teacher_outputs: Sequence[torch.Tensor], teacher_temp: float) -> torch.Tensor:
        """Compute the loss, then update the centre.

        Args:
            student_outputs (Sequence[torch.Tensor]): One ``(B, K)`` output per student view,
                the teacher's views first, in the teacher's order.
            teacher_outputs (Sequence[torch.Tensor]): One ``(B, K)`` output per teacher view.
            teacher_temp (float): Teacher temperature ``T_t`` at this iteration.

        Returns:
            torch.Tensor: The scalar loss.
        """
        num_global, num_views = len(teacher_outputs), len(student_outputs)
        if num_global < 1 or num_views < 2 or num_views < num_global:
            raise ValueError(f'DINOLoss: expected at least 2 student views, the first of them '
                             f'the teacher\'s, got {num_views} student and {num_global} teacher '
                             'views')
        student = torch.stack(list(student_outputs))  # (V, B, K)
        teacher = torch.stack(list(teacher_outputs)).detach()  # (G, B, K)
        if student.shape[1:] != teacher.shape[1:] or student.shape[-1] != self.out_channels:
            raise ValueError(f'DINOLoss: student views {tuple(student.shape[1:])} and teacher '
                             f'views {tuple(teacher.shape[1:])} must both be (B, '
                             f'{self.out_channels})')
        log_p_student = F.log_softmax(student.float() / self.student_temp, dim=-1)
        p_teacher = F.softmax((teacher.float() - self.center) / teacher_temp, dim=-1)
        # Cross-entropy of every (teacher view g, student view v) pair, per sample: (G, V, B).
        cross = -torch.einsum('gbk,vbk->gvb', p_teacher, log_p_student)
        same_view = torch.eye(num_global, num_views, dtype=torch.bool, device=cross.device)
        loss = cross.mean(dim=-1)[~same_view].mean()
        self.update_center(teacher)
        return loss

    @torch.no_grad()
    def teacher_entropy(self, teacher_outputs: Sequence[torch.Tensor],
                        teacher_temp: float) -> torch.Tensor:
        """Mean entropy (nats) of the teacher's targets ``P_t^i`` over views and samples, with
        the current centre: call it before the loss, which moves the centre.

        Args:
            teacher_outputs (Sequence[torch.Tensor]): One ``(B, K)`` output per teacher view.
            teacher_temp (float): Teacher temperature ``T_t`` at this iteration.

        Returns:
            torch.Tensor: The scalar entropy, between 0 and ``ln K``.
        """
        log_p = F.log_softmax((torch.stack(list(teacher_outputs)).float() - self.center) /
                              teacher_temp, dim=-1)
        return -(log_p.exp() * log_p).sum(dim=-1).mean()

    @torch.no_grad()
    def update_center(self, teacher: torch.Tensor) -> None:
        """Move the centre towards the mean teacher output over every process's batch.

        Args:
            teacher (torch.Tensor): Teacher outputs ``(..., K)`` of this process.
        """
        teacher = teacher.reshape(-1, self.out_channels).float()
        batch_sum = teacher.sum(dim=0, keepdim=True)
        all_reduce(batch_sum)  # a no-op outside distributed runs
        batch_center = batch_sum / (teacher.shape[0] * get_world_size())
        self.center.mul_(self.center_momentum).add_(
            batch_center, alpha=1 - self.center_momentum)
