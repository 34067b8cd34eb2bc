"""Synchronised batch norm for multi-process runs on CPUs (gloo).

torch's ``nn.SyncBatchNorm`` does not run on CPUs (torch 2.14.1): its ``forward`` refuses CPU
tensors (``ValueError: SyncBatchNorm expected input tensor to be on GPU ...``), the kernels it
calls (``torch.batch_norm_stats`` and the others) exist for CUDA only, and DDP refuses a CPU
module that holds one, subclasses included (``SyncBatchNorm layers only work with GPU
modules``). :class:`CPUSyncBatchNorm` is therefore a plain batch norm (torch's common base,
:data:`medtrans.utils.upstream.BatchNormBase`) that takes the statistics of the whole
distributed batch with two all-reductions. :class:`~medtrans.engine.MedtransRunner` puts it in
place of torch's on CPU multi-process runs, so that ``sync_bn`` and SyncBN layers mean the
same there as on GPUs.
"""
from typing import Optional

import torch
import torch.distributed as dist
import torch.nn as nn

from medtrans.registry import MODELS
from medtrans.utils.upstream import BatchNormBase, is_batch_norm

__all__ = ['CPUSyncBatchNorm', 'to_cpu_sync_batchnorm']


class _AllReduceSum(torch.autograd.Function):
    """The sum of a tensor over the processes; the gradient of each process's input is the sum
    of every process's output gradient (each process's loss depends on every input).

    ``torch.distributed.nn.functional.all_reduce`` does this too, but is deprecated (torch
    2.14.1) in favour of a private module.
    """

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, group) -> torch.Tensor:
        ctx.group = group
        tensor = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(tensor, group=group)
        return tensor

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


@MODELS.register_module()
class CPUSyncBatchNorm(BatchNormBase):
    """Batch norm synchronised over the processes, as ``torch.nn.SyncBatchNorm``, on CPUs too.

    While training in a process group of several processes, the input is normalised with the
    mean and (biased) variance of the whole distributed batch, taken in two passes (the sum,
    then the squared deviations from the global mean; all-reduced, in at least float32), and
    the running statistics move towards that mean and unbiased variance, as torch's SyncBN
    does; gradients flow through the reductions to every process's input. Otherwise
    (evaluation, one process) it is a plain batch norm. Written for CPUs; nothing in it is
    specific to them.

    Args:
        num_features (int): Channels ``C`` of an input ``(N, C, ...)``.
        eps (float): Added to the variance. Defaults to 1e-5.
        momentum (float, optional): Of the running statistics; None for a cumulative
            average. Defaults to 0.1.
        affine (bool): Learnable weight and bias. Defaults to True.
        track_running_stats (bool): Keep running statistics. Defaults to True.
        process_group (ProcessGroup, optional): The processes to synchronise over. Defaults
            to None, the whole world.
    """

    def __init__(self,
                 num_features: int,
                 eps: float = 1e-5,
                 momentum: Optional[float] = 0.1,
                 affine: bool = True,
                 track_running_stats: bool = True,
                 process_group: Optional[dist.ProcessGroup] = None) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.process_group = process_group

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f'expected at least 2D input (got {input.dim()}D input)')

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self._synchronised():
            return super().forward(input)
        self._check_input_dim(input)
        group = self.process_group or dist.group.WORLD
        dims = [0, *range(2, input.dim())]
        shape = [1, -1] + [1] * (input.dim() - 2)
        x = input.to(torch.promote_types(input.dtype, torch.float32))

        sum_and_count = torch.cat([x.sum(dims), x.new_full((1, ), x.numel() // x.shape[1])])
        sum_and_count = _AllReduceSum.apply(sum_and_count, group)
        count = sum_and_count[-1]
        if count.item() < 2:
            raise ValueError('Expected more than 1 value per channel when training, got '
                             f'{int(count.item())} over the processes')
        mean = sum_and_count[:-1] / count
        centred = x - mean.view(shape)
        var = _AllReduceSum.apply((centred * centred).sum(dims), group) / count

        output = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.weight is not None:
            output = output * self.weight.view(shape)
        if self.bias is not None:
            output = output + self.bias.view(shape)
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach() * count / (count - 1))
        return output.to(input.dtype)

    def _synchronised(self) -> bool:
        """Whether torch's SyncBN would synchronise: training, in a group of several."""
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return False
        return dist.get_world_size(self.process_group or dist.group.WORLD) > 1

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, unbiased_var: torch.Tensor) -> None:
        self.num_batches_tracked.add_(1)
        factor = (1.0 / self.num_batches_tracked.item()
                  if self.momentum is None else self.momentum)
        self.running_mean.mul_(1 - factor).add_(mean.to(self.running_mean.dtype), alpha=factor)
        self.running_var.mul_(1 - factor).add_(
            unbiased_var.to(self.running_var.dtype), alpha=factor)


def to_cpu_sync_batchnorm(module: nn.Module, every_batch_norm: bool = False,
                          process_group: Optional[dist.ProcessGroup] = None) -> nn.Module:
    """Put :class:`CPUSyncBatchNorm` layers in place of torch's SyncBatchNorm layers.

    Each new layer shares the old one's parameters and buffers (nothing is copied) and its
    training mode, as ``torch.nn.SyncBatchNorm.convert_sync_batchnorm`` does.

    Args:
        module (nn.Module): The module, changed in place (or returned new if it is a layer to
            replace).
        every_batch_norm (bool): Replace every batch norm (``BatchNorm1d/2d/3d`` too), as
            MMEngine's ``sync_bn`` does. Defaults to False: only torch's SyncBatchNorm layers.
        process_group (ProcessGroup, optional): The group to synchronise over. Defaults to
            None: the layer's own group for a SyncBatchNorm, otherwise the whole world.

    Returns:
        nn.Module: The module, or its replacement.
    """
    output = module
    replace = isinstance(module, nn.SyncBatchNorm) or (every_batch_norm and
                                                        is_batch_norm(module))
    if replace and not isinstance(module, CPUSyncBatchNorm):
        output = CPUSyncBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine,
            module.track_running_stats,
            process_group or getattr(module, 'process_group', None))
        # Shared, not copied: optimizers and other references keep working.
        output.weight, output.bias = module.weight, module.bias
        output.running_mean, output.running_var = module.running_mean, module.running_var
        output.num_batches_tracked = module.num_batches_tracked
        output.training = module.training
        if hasattr(module, 'qconfig'):
            output.qconfig = module.qconfig
    for name, child in module.named_children():
        output.add_module(name, to_cpu_sync_batchnorm(child, every_batch_norm, process_group))
    return output
