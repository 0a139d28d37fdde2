"""The torch engine's CUDA graphs: the batch sizes a run uses are captured ahead, a partial batch is padded."""

from __future__ import annotations

import pytest
import torch

from engines.backends.torch_backend import TorchEngine, graph_batch_sizes
from engines.spec import ModelSpec


@pytest.mark.parametrize("batch,sizes", [(1, [1]), (2, [1, 2]), (3, [1, 2, 3]), (4, [1, 2, 4]), (12, [1, 2, 4, 8, 12]),
                                         (16, [1, 2, 4, 8, 16]), (17, [1, 2, 4, 8, 16, 17])])
def test_graph_batch_sizes_are_the_powers_of_two_below_the_batch_and_the_batch(batch, sizes):
    assert graph_batch_sizes(batch) == sizes


@pytest.mark.gpu
def test_a_cuda_graph_engine_never_captures_mid_stream():
    """prepare(16) captures 1, 2, 4, 8, 16; batches of 1..16 (a live source's partial batches) then replay those
    graphs, padded, with the module's own outputs; a batch above 16 (a strategy's tiles) is captured once."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (torch sees none here)")
    torch.manual_seed(0)
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 1, 3, padding=1))
    engine = TorchEngine(conv, ModelSpec(input_hw=(32, 32), output="logit"), "conv", device="cuda")
    engine.prepare(16)
    assert sorted(key[0] for key in engine._graphs) == [1, 2, 4, 8, 16]
    assert all(runner is not None for runner in engine._graphs.values()), "capture failed"
    batch = torch.rand((20, 3, 32, 32), device="cuda")
    with torch.no_grad():
        expected = conv.to(memory_format=torch.channels_last)(batch)
    for n in range(1, 17):
        torch.testing.assert_close(engine.infer_tensor(batch[:n]).clone(), expected[:n], rtol=5e-3, atol=5e-3)
    assert sorted(key[0] for key in engine._graphs) == [1, 2, 4, 8, 16], "a batch size was captured mid-stream"
    torch.testing.assert_close(engine.infer_tensor(batch).clone(), expected, rtol=5e-3, atol=5e-3)
    assert sorted(key[0] for key in engine._graphs) == [1, 2, 4, 8, 16, 20]
