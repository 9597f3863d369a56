"""The matmul recorder counts the products that ran, forward and backward, exactly."""

import torch
from torch import nn

from spikerl.bench.flops import MatmulRecorder, matmul_seconds


def test_linear_forward_and_backward_work_is_counted_exactly():
    torch.manual_seed(0)
    layer = nn.Linear(5, 7)
    x = torch.randn(3, 5, requires_grad=True)
    with MatmulRecorder() as rec:
        layer(x).sum().backward()
    forward = 2 * 3 * 5 * 7  # addmm
    grad_input = 2 * 3 * 7 * 5  # mm(grad_out [3,7], W [7,5])
    grad_weight = 2 * 7 * 3 * 5  # mm(grad_out^T [7,3], x [3,5])
    assert rec.flops == forward + grad_input + grad_weight
    assert sum(rec.calls.values()) == 3


def test_no_grad_forward_of_a_time_major_input_counts_every_tick():
    layer = nn.Linear(4, 6, bias=False)
    with torch.no_grad(), MatmulRecorder() as rec:
        layer(torch.randn(5, 2, 4))  # [T, B, in]: one product over T * B rows
    assert rec.flops == 2 * 5 * 2 * 4 * 6


def test_batched_products_count_their_batch():
    a, b = torch.randn(3, 2, 4), torch.randn(3, 4, 5)
    with MatmulRecorder() as rec:
        torch.bmm(a, b)
    assert rec.flops == 2 * 3 * 2 * 4 * 5


def test_element_wise_work_is_not_counted():
    with MatmulRecorder() as rec:
        (torch.randn(100) * 2 + 1).relu()
    assert rec.flops == 0 and not rec.calls


def test_matmul_seconds_scales_with_the_call_count():
    with MatmulRecorder() as rec:
        torch.randn(64, 64) @ torch.randn(64, 64)
    once = matmul_seconds(rec.calls, seconds_per_shape=0.01)
    key = next(iter(rec.calls))
    rec.calls[key] = 1000
    assert once > 0
    assert matmul_seconds(rec.calls, seconds_per_shape=0.01) > 100 * once
