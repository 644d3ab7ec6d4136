"""`train.compile: true` falls back to eager training when torch.compile cannot compile (here: Inductor finds no
C++ compiler, as on a CPU machine without one), and the optimizer is the same AdamW update fused or not."""

import functools
import logging

import torch
from torch import nn

from spectralgpt.training.engine import CompiledOrEager, adamw


def test_compile_without_a_cxx_compiler_falls_back_to_eager(monkeypatch, caplog):
    import torch._inductor.config as inductor

    monkeypatch.setattr(inductor.cpp, "cxx", ("/nonexistent/c++",))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 2))
    runner = CompiledOrEager(model)
    x = torch.randn(3, 4)
    try:
        with caplog.at_level(logging.WARNING, logger="spectralgpt.training.engine"):
            y = runner(x)
    finally:
        torch._dynamo.reset()
    assert "torch.compile failed" in caplog.text and "training without it" in caplog.text
    assert runner.compiled is None and torch.equal(y, model(x))
    assert torch.equal(runner(x), model(x))  # stays eager, no second attempt
    assert runner.training and all(p is q for p, q in zip(runner.parameters(), model.parameters()))  # the model's


class Mlp(nn.Module):  # a model without len(), as every model of the library
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 8), nn.Linear(8, 2)

    def forward(self, x):
        return self.fc2(torch.nn.functional.gelu(self.fc1(x)))


def test_a_compiled_model_keeps_running_compiled_after_its_first_call(monkeypatch):
    """A real OptimizedModule (Dynamo's eager backend: no C++ build in a unit test); bool() on it raises TypeError
    ("does not support len()"), which used to end every compiled run at its second step."""
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    torch.manual_seed(0)
    model = Mlp()
    runner = CompiledOrEager(model)
    x = torch.randn(3, 4)
    try:
        outs = [runner(x) for _ in range(3)]
    finally:
        torch._dynamo.reset()
    assert isinstance(runner.compiled, torch._dynamo.eval_frame.OptimizedModule)
    assert all(torch.allclose(y, model(x)) for y in outs)


def test_fused_adamw_takes_the_same_steps_as_the_default():
    torch.manual_seed(0)
    a = nn.Linear(16, 16)
    b = nn.Linear(16, 16)
    b.load_state_dict(a.state_dict())
    fused = adamw(a.parameters(), 1e-2, (0.9, 0.95), torch.device("cpu"))
    plain = torch.optim.AdamW(b.parameters(), lr=1e-2, betas=(0.9, 0.95))
    assert fused.defaults["fused"]
    for _ in range(5):
        x = torch.randn(8, 16)
        for m, opt in ((a, fused), (b, plain)):
            opt.zero_grad()
            m(x).square().mean().backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p, q, rtol=1e-5, atol=1e-6)
    assert not torch.equal(a.weight, nn.Linear(16, 16).weight)

