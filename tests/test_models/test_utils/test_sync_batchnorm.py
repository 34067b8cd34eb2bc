"""CPUSyncBatchNorm: 2 gloo processes with half a batch each normalise, back-propagate and
update their running statistics as one batch norm over the whole batch."""
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

from medtrans.models.utils import CPUSyncBatchNorm, to_cpu_sync_batchnorm

WORLD = 2
# (input shape of the whole batch, momentum): 2-D feature maps, 1-D features, cumulative mean.
CASES = [((8, 3, 5, 4), 0.1), ((6, 5), 0.3), ((4, 2, 3, 3), None)]
STEPS = 2  # the second step starts from the running statistics the first one left


def _case_data(shape, seed):
    generator = torch.Generator().manual_seed(seed)
    batches = [3 * torch.randn(shape, generator=generator) + 1 for _ in range(STEPS)]
    loss_weights = [torch.randn(shape, generator=generator) for _ in range(STEPS)]
    affine = torch.randn(2, shape[1], generator=generator)
    return batches, loss_weights, affine


def _norm(cls, channels, momentum, affine):
    norm = cls(channels, momentum=momentum)
    with torch.no_grad():
        norm.weight.copy_(affine[0])
        norm.bias.copy_(affine[1])
    return norm


def _run(norm, batches, loss_weights):
    """Per step: the output and the input's gradient; at the end the parameters' gradients
    (summed over the steps) and the running statistics."""
    outputs, input_grads = [], []
    for batch, weights in zip(batches, loss_weights):
        batch = batch.clone().requires_grad_()
        output = norm(batch)
        (output * weights).sum().backward()
        outputs.append(output.detach())
        input_grads.append(batch.grad)
    return dict(outputs=outputs, input_grads=input_grads, weight_grad=norm.weight.grad,
                bias_grad=norm.bias.grad, running_mean=norm.running_mean,
                running_var=norm.running_var, tracked=norm.num_batches_tracked)


def _worker(rank, port, out_dir):
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                            world_size=WORLD)
    try:
        results = []
        for index, (shape, momentum) in enumerate(CASES):
            batches, loss_weights, affine = _case_data(shape, seed=index)
            half = shape[0] // WORLD
            own = slice(rank * half, (rank + 1) * half)
            norm = _norm(CPUSyncBatchNorm, shape[1], momentum, affine)
            results.append(_run(norm, [b[own] for b in batches], [w[own] for w in loss_weights]))
        torch.save(results, f'{out_dir}/rank{rank}.pth')
    finally:
        dist.destroy_process_group()


def test_two_processes_normalise_as_one_batch(free_port, tmp_path):
    mp.start_processes(_worker, args=(free_port, str(tmp_path)), nprocs=WORLD,
                       start_method='spawn')
    ranks = [torch.load(tmp_path / f'rank{r}.pth', weights_only=True) for r in range(WORLD)]
    for index, (shape, momentum) in enumerate(CASES):
        batches, loss_weights, affine = _case_data(shape, seed=index)
        expected = _run(_norm(nn.BatchNorm1d if len(shape) == 2 else nn.BatchNorm2d, shape[1],
                              momentum, affine), batches, loss_weights)
        parts = [rank[index] for rank in ranks]
        for step in range(STEPS):
            for key in ('outputs', 'input_grads'):
                torch.testing.assert_close(torch.cat([p[key][step] for p in parts]),
                                           expected[key][step], rtol=1e-5, atol=1e-5)
        # Each process holds the gradient of its share; DDP sums (averages) them.
        for key in ('weight_grad', 'bias_grad'):
            torch.testing.assert_close(sum(p[key] for p in parts), expected[key],
                                       rtol=1e-5, atol=1e-5)
        for key in ('running_mean', 'running_var', 'tracked'):
            assert torch.equal(parts[0][key], parts[1][key]), key
            torch.testing.assert_close(parts[0][key], expected[key], rtol=1e-6, atol=1e-6)
        # Not the statistics of either half alone.
        own = _norm(nn.BatchNorm1d if len(shape) == 2 else nn.BatchNorm2d, shape[1], momentum,
                    affine)
        half = _run(own, [b[:shape[0] // WORLD] for b in batches],
                    [w[:shape[0] // WORLD] for w in loss_weights])
        assert not torch.allclose(half['running_var'], expected['running_var'], rtol=1e-3)


def test_outside_a_process_group_it_is_torchs_batch_norm():
    torch.manual_seed(0)
    x = torch.randn(6, 3, 4, 4)
    reference = nn.BatchNorm2d(3)
    norm = CPUSyncBatchNorm(3)
    torch.testing.assert_close(norm(x), reference(x), rtol=0, atol=0)
    torch.testing.assert_close(norm.running_var, reference.running_var, rtol=0, atol=0)
    norm.eval(), reference.eval()
    torch.testing.assert_close(norm(x), reference(x), rtol=0, atol=0)


@pytest.mark.parametrize('every_batch_norm', [False, True])
def test_conversion_shares_parameters_and_buffers(every_batch_norm):
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.SyncBatchNorm(4),
                          nn.LayerNorm(4)).eval()
    plain, sync = model[1], model[2]
    converted = to_cpu_sync_batchnorm(model, every_batch_norm=every_batch_norm)
    assert converted is model
    assert type(model[1]) is (CPUSyncBatchNorm if every_batch_norm else nn.BatchNorm2d)
    assert type(model[2]) is CPUSyncBatchNorm and type(model[3]) is nn.LayerNorm
    for old, new in ((plain, model[1]), (sync, model[2])):
        assert new.weight is old.weight and new.bias is old.bias
        assert new.running_mean is old.running_mean and new.running_var is old.running_var
        assert new.num_batches_tracked is old.num_batches_tracked and not new.training
    assert type(to_cpu_sync_batchnorm(nn.SyncBatchNorm(2))) is CPUSyncBatchNorm
