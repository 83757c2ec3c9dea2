"""Exact Fisher equals a naive per-sample loop."""
import pytest
import torch
from torch import nn

from blip_rl.core import BlipConv2d, BlipLinear, FisherData, fisher_diagonal, supported_layers


def naive_fisher(model, inputs, generator_seed):
    """Per-sample backward passes; y sampled in the same order as fisher_diagonal does."""
    g = torch.Generator().manual_seed(generator_seed)
    params = {n: p for n, p in model.named_parameters()}
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    with torch.no_grad():
        log_p = torch.log_softmax(model(inputs), -1)
    y = torch.multinomial(log_p.exp(), 1, generator=g)
    for i in range(len(inputs)):
        model.zero_grad()
        torch.log_softmax(model(inputs[i:i + 1]), -1)[0, y[i, 0]].backward()
        for n, p in params.items():
            total[n] += p.grad.double().square().float()
    return {n: t / len(inputs) for n, t in total.items()}


def _check(model, inputs, batch_size):
    model = model.double().float()  # same params, float32
    seed = 3
    data = FisherData(inputs, model, batch_size=batch_size, generator=torch.Generator().manual_seed(seed))
    # With one batch, sampling matches the naive loop's single multinomial call.
    assert batch_size >= len(inputs)
    fast = fisher_diagonal(supported_layers(model), data)
    slow = naive_fisher(model, inputs, seed)
    for layer_name, per_param in fast.items():
        for pn, f in per_param.items():
            ref = slow[f"{layer_name}.{pn}" if layer_name else pn]
            torch.testing.assert_close(f, ref, rtol=1e-5, atol=1e-9 * float(ref.abs().max()) + 1e-12)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("stride,padding,dilation", [(1, 0, 1), (2, 1, 1), (3, 2, 2)])
def test_conv_fisher_matches_naive_loop(bias, stride, padding, dilation):
    torch.manual_seed(0)
    model = nn.Sequential(
        BlipConv2d(3, 4, 3, stride=stride, padding=padding, dilation=dilation, bias=bias, init="default"),
        nn.ReLU(),
        nn.Conv2d(4, 5, 2, bias=bias),
        nn.Flatten(),
        nn.LazyLinear(6, bias=bias),
    )
    x = torch.randn(7, 3, 13, 11)
    model(x)  # materialize the lazy layer
    _check(model, x, batch_size=64)


@pytest.mark.parametrize("bias", [True, False])
def test_linear_fisher_matches_naive_loop(bias):
    torch.manual_seed(1)
    model = nn.Sequential(BlipLinear(5, 8, bias=bias), nn.Tanh(), nn.Linear(8, 3, bias=bias))
    _check(model, torch.randn(9, 5), batch_size=9)


def test_linear_over_extra_dims_sums_per_sample():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(15, 4))
    _check(model, torch.randn(6, 5, 4), batch_size=6)


def test_fisher_is_batch_size_invariant_in_expectation_of_sampling():
    torch.manual_seed(4)
    model = nn.Sequential(BlipLinear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    x = torch.randn(40, 5)
    a = fisher_diagonal(supported_layers(model), FisherData(x, model, batch_size=40, generator=torch.Generator().manual_seed(0)))
    b = fisher_diagonal(supported_layers(model), FisherData(x, model, batch_size=7, generator=torch.Generator().manual_seed(0)))
    # Different chunking samples different y, but both are averages over the same 40 inputs.
    assert a["0"]["weight"].shape == b["0"]["weight"].shape == (8, 5)
    assert torch.all(a["0"]["weight"] >= 0) and torch.all(b["0"]["weight"] >= 0)


def test_layers_outside_the_logits_get_zero_fisher():
    model = nn.Sequential(BlipLinear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    unused = BlipLinear(3, 2)
    layers = {"used": model[0], "unused": unused}
    f = fisher_diagonal(layers, FisherData(torch.randn(5, 3), model))
    assert torch.count_nonzero(f["unused"]["weight"]) == 0
    assert torch.count_nonzero(f["used"]["weight"]) > 0


def test_no_inputs_is_a_clear_error():
    model = nn.Sequential(BlipLinear(3, 2))
    with pytest.raises(ValueError, match="at least one input"):
        fisher_diagonal(supported_layers(model), FisherData(torch.empty(0, 3), model))


def test_layer_run_twice_is_refused():
    lin = BlipLinear(3, 3)
    with pytest.raises(ValueError, match="2 times"):
        fisher_diagonal({"l": lin}, FisherData(torch.randn(4, 3), lambda x: lin(lin(x))))
