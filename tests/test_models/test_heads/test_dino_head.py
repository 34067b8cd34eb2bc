"""DINOHead: DINO's projection head, checked against its computation written out."""
import pytest
import torch
import torch.nn.functional as F

from medtrans.models.heads import DINOHead


def test_architecture_and_output_equal_the_computation():
    torch.manual_seed(0)
    head = DINOHead(in_channels=12, out_channels=40, hidden_channels=24, bottleneck_channels=8)
    linears = [m for m in head.mlp if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(12, 24), (24, 24), (24, 8)]
    assert [type(m).__name__ for m in head.mlp] == ['Linear', 'GELU', 'Linear', 'GELU', 'Linear']
    x = torch.randn(5, 12)
    hidden = F.gelu(linears[1](F.gelu(linears[0](x))))
    bottleneck = F.normalize(linears[2](hidden), dim=-1)
    v = head.last_layer.parametrizations.weight.original1
    expected = bottleneck @ (v / v.norm(dim=1, keepdim=True)).T  # weight norm with g = 1
    torch.testing.assert_close(head(x), expected)


@pytest.mark.parametrize('norm_last_layer', [True, False])
def test_last_layer_magnitude_starts_at_one_and_is_frozen_by_default(norm_last_layer):
    head = DINOHead(in_channels=12, out_channels=40, norm_last_layer=norm_last_layer)
    g = head.last_layer.parametrizations.weight.original0
    assert torch.equal(g, torch.ones(40, 1))
    assert g.requires_grad is not norm_last_layer
    assert head.last_layer.bias is None


def test_mlp_is_initialised_as_dino():
    torch.manual_seed(0)
    head = DINOHead(in_channels=384, hidden_channels=2048, bottleneck_channels=256,
                    out_channels=16)
    for layer in head.mlp:
        if isinstance(layer, torch.nn.Linear):
            assert torch.equal(layer.bias, torch.zeros_like(layer.bias))
            # DINO's trunc_normal_(std=.02) truncates at +-2 (absolute): in effect N(0, 0.02^2).
            assert abs(layer.weight.std().item() - 0.02) < 0.001
            assert abs(layer.weight.mean().item()) < 0.001


def test_one_layer_head():
    head = DINOHead(in_channels=12, out_channels=40, bottleneck_channels=8, num_layers=1)
    assert [type(m).__name__ for m in head.mlp] == ['Linear']
    assert head(torch.randn(2, 12)).shape == (2, 40)


def test_zero_layers_refused():
    with pytest.raises(ValueError, match='num_layers'):
        DINOHead(in_channels=12, num_layers=0)
