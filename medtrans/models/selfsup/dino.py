"""DINO self-supervised pretraining for any backbone with the medtrans embedding interface."""
import copy
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmpretrain.models import BaseSelfSupervisor
from mmpretrain.structures import DataSample

from medtrans.registry import MODELS
from medtrans.utils.upstream import foreach_add_, foreach_mul_, is_batch_norm

from ..backbones import EmbeddingBackbone

__all__ = ['DINO']


@MODELS.register_module()
class DINO(BaseSelfSupervisor):
    """DINO: self-distillation of a student into a momentum teacher, on multi-crop views.

    Paper: `Emerging Properties in Self-Supervised Vision Transformers
    <https://arxiv.org/abs/2104.14294>`_. Reference code: facebookresearch/dino.

    Student: ``backbone`` (any :class:`~medtrans.models.backbones.EmbeddingBackbone`: the CLS
    token of a ViT, the pooled last stage of a CNN or Swin) followed by ``head``
    (:class:`~medtrans.models.heads.DINOHead`). Teacher (``teacher.backbone``,
    ``teacher.head``): a copy of the student that is never trained; :meth:`init_weights` makes
    its whole state, buffers included, the student's (after the backbone read its
    ``pretrained`` file: a CNN teacher starts with the ImageNet running statistics), as DINO's
    ``teacher.load_state_dict(student.state_dict())``. Its parameters then follow the student's
    as an exponential moving average, :meth:`update_teacher`, called after every optimizer
    step by :class:`~medtrans.engine.hooks.DINOHook` with the scheduled momentum.

    :meth:`loss` takes the views of a batch (``mmpretrain.MultiView``: the global crops first,
    then the local crops), runs the teacher on the first ``num_global_views`` and the student
    on all of them (one backbone pass per run of equal-sized views, as DINO's
    ``MultiCropWrapper``), and returns ``loss``: the :class:`~medtrans.models.losses.DINOLoss`
    ``loss`` at the teacher temperature :attr:`teacher_temp`, which ``DINOHook`` also sets; and
    ``teacher_entropy``, logged only (:meth:`DINOLoss.teacher_entropy`).

    The teacher runs without its stochastic layers (dropout, stochastic depth), as DINO's
    teacher is built without them. Its batch norms are in training mode while the model is,
    as in DINO (whose teacher is never put in eval mode): they normalise with the statistics
    of the teacher's batch of global views, and their running statistics follow those batches,
    not the student's (the EMA moves parameters only, as DINO's). Under DDP, DINO converts
    student and teacher to SyncBatchNorm when they have batch norms, so that both normalise
    with the statistics of the whole distributed batch: the DINO configs ask MMEngine's Runner
    for it with ``sync_bn = 'torch'`` (``configs/_base_/models/dino_common.py``), which
    :class:`~medtrans.engine.MedtransRunner` honours on CPUs too
    (:class:`~medtrans.models.utils.CPUSyncBatchNorm`).

    Args:
        backbone (dict | nn.Module): The backbone; it must provide ``num_features`` and
            ``forward_embedding``.
        head (dict | nn.Module): The projection head; ``in_channels`` defaults to the
            backbone's ``num_features``.
        loss (dict | nn.Module, optional): The loss; ``out_channels`` defaults to the head's.
            Defaults to None, i.e. ``dict(type='DINOLoss')``.
        num_global_views (int): Leading views that the teacher sees. Defaults to 2.
        teacher_temp (float): Teacher temperature until a schedule sets it. Defaults to 0.04.
        data_preprocessor (dict | nn.Module, optional): A module, or the arguments of
            mmpretrain's ``SelfSupDataPreprocessor`` (the type unless given). Defaults to None
            (that preprocessor without normalisation).
        init_cfg (dict | list[dict], optional): MMEngine initialisation config.
            Defaults to None.
    """

    def __init__(self,
                 backbone: Union[dict, nn.Module],
                 head: Union[dict, nn.Module],
                 loss: Optional[Union[dict, nn.Module]] = None,
                 num_global_views: int = 2,
                 teacher_temp: float = 0.04,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        if isinstance(backbone, dict):
            backbone = MODELS.build(backbone)
        if not isinstance(backbone, EmbeddingBackbone):
            raise TypeError(f'DINO: the backbone ({type(backbone).__name__}) has no '
                            '`num_features` and `forward_embedding(x) -> (B, C)`; see '
                            'medtrans.models.backbones.EmbeddingBackbone')
        if isinstance(head, dict):
            head = MODELS.build(dict(dict(in_channels=backbone.num_features), **head))
        if getattr(head, 'in_channels', backbone.num_features) != backbone.num_features:
            raise ValueError(f'DINO: head.in_channels={head.in_channels} differs from the '
                             f'backbone\'s embedding width num_features={backbone.num_features}')
        if loss is None:
            loss = dict(type='DINOLoss')
        if isinstance(loss, dict):
            loss = MODELS.build(dict(dict(out_channels=head.out_channels), **loss))
        if loss.out_channels != head.out_channels:
            raise ValueError(f'DINO: loss.out_channels={loss.out_channels} differs from '
                             f'head.out_channels={head.out_channels}')
        if num_global_views < 1:
            raise ValueError(f'DINO: num_global_views must be >= 1, got {num_global_views!r}')
        if not isinstance(data_preprocessor, nn.Module):
            data_preprocessor = dict(dict(type='mmpretrain.SelfSupDataPreprocessor'),
                                     **(data_preprocessor or {}))
        super().__init__(
            backbone=backbone, head=head, data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self.loss_module = loss
        self.num_global_views = num_global_views
        self.teacher_temp = teacher_temp
        self.teacher = nn.ModuleDict(
            dict(backbone=copy.deepcopy(backbone), head=copy.deepcopy(head)))
        self.teacher.requires_grad_(False)

    def init_weights(self) -> None:
        """Initialise the student (the backbone reads ``pretrained``), then copy its whole
        state, parameters and buffers, into the teacher."""
        super().init_weights()
        for part in ('backbone', 'head'):
            self.teacher[part].load_state_dict(getattr(self, part).state_dict())

    def train(self, mode: bool = True) -> 'DINO':
        super().train(mode)
        self.teacher.eval()
        for module in self.teacher.modules():
            if is_batch_norm(module):
                module.train(mode)
        return self

    def _teacher_student_pairs(self) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        pairs = []
        for part in ('backbone', 'head'):
            student = dict(getattr(self, part).named_parameters())
            teacher = dict(self.teacher[part].named_parameters())
            pairs += [(teacher[name], student[name]) for name in student]
        return pairs

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        """Move the teacher's parameters towards the student's:
        ``teacher <- momentum * teacher + (1 - momentum) * student``.

        Parameters only, as in DINO: the teacher's buffers (batch-norm running statistics)
        follow the teacher's own batches (see the class docstring).

        Args:
            momentum (float): The EMA momentum, in [0, 1].
        """
        teacher, student = zip(*self._teacher_student_pairs())
        foreach_mul_(teacher, momentum)
        foreach_add_(teacher, student, alpha=1 - momentum)

    def student_last_layer_parameters(self) -> List[nn.Parameter]:
        """The parameters of the student head's last layer (frozen during the first epoch)."""
        return list(self.head.last_layer.parameters())

    @staticmethod
    def _project(backbone: nn.Module, head: nn.Module,
                 views: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """Head outputs ``(B, K)`` per view; one backbone pass per run of equal-sized views."""
        embeddings, start = [], 0
        while start < len(views):
            end = start + 1
            while end < len(views) and views[end].shape == views[start].shape:
                end += 1
            embeddings.append(backbone.forward_embedding(torch.cat(views[start:end])))
            start = end
        return list(head(torch.cat(embeddings)).split(views[0].shape[0]))

    def loss(self, inputs: List[torch.Tensor],
             data_samples: Optional[List[DataSample]] = None) -> Dict[str, torch.Tensor]:
        """The DINO loss of a batch.

        Args:
            inputs (list[torch.Tensor]): One ``(B, 3, H_v, W_v)`` batch per view, the global
                views first.
            data_samples (list[DataSample], optional): Not used.

        Returns:
            dict[str, torch.Tensor]: ``loss``, and ``teacher_entropy`` (logged, not trained
            on; see :meth:`DINOLoss.teacher_entropy`).
        """
        if not isinstance(inputs, (list, tuple)) or len(inputs) <= self.num_global_views:
            count = len(inputs) if isinstance(inputs, (list, tuple)) else 'a tensor, not a list'
            raise ValueError(f'DINO expects a list of views, {self.num_global_views} global '
                             f'and at least one more, got {count} (use mmpretrain.MultiView '
                             'in the pipeline)')
        if len({view.shape[0] for view in inputs}) != 1:
            raise ValueError('DINO: every view must have the same batch size, got '
                             f'{[view.shape[0] for view in inputs]}')
        with torch.no_grad():
            teacher_outputs = self._project(self.teacher['backbone'], self.teacher['head'],
                                            inputs[:self.num_global_views])
        student_outputs = self._project(self.backbone, self.head, inputs)
        # Before the loss, which moves the centre.
        entropy = self.loss_module.teacher_entropy(teacher_outputs, self.teacher_temp)
        loss = self.loss_module(student_outputs, teacher_outputs, self.teacher_temp)
        return dict(loss=loss, teacher_entropy=entropy)

    def extract_feat(self, inputs: torch.Tensor) -> Tuple[torch.Tensor]:
        """The teacher's image embedding, the one DINO is evaluated and exported with.

        Args:
            inputs (torch.Tensor): Images ``(B, 3, H, W)``.

        Returns:
            tuple[torch.Tensor]: ``(embedding (B, C),)``.
        """
        return (self.teacher['backbone'].forward_embedding(inputs), )
