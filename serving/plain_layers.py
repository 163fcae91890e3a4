"""A stack of linear layers and activations as plain NumPy calls, for serving's forward.

Serving runs the towers' and the ranker's small MLPs once per request on one to a few hundred rows,
where each nn.Module call (hooks, dispatch, the nesting of TorchRec's DenseArch > MLP > Sequential >
Perceptron > Linear) costs as much as the matrix product inside it: the ranker's dense and over arches
took 236 us through their modules against 110 us as the same F.linear and relu calls (measured here, 100
rows). Even a bare torch call's dispatch costs more than a NumPy call's at these sizes: with the pooling
(serving/bags.py) and the interaction in NumPy as well, the 1M-product shop's ranker went from
about 200 to 60 us per request for 100 candidates and a customer's embedding from 175-230 to 35 us
(in process, tests/bench-style loop).
The layers are views of the modules' own parameters (`Tensor.numpy()` shares the memory), so weights
loaded in place stay in use (tests/serving/test_forward.py compares the results with the modules'
forward).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torchrec.models.dlrm import DenseArch, OverArch
from torchrec.modules.mlp import MLP, Perceptron


def as_array(tensor: torch.Tensor) -> np.ndarray:
    """A NumPy view of a CPU tensor (a copy of one on another device)."""
    tensor = tensor.detach()
    return tensor.numpy() if tensor.device.type == "cpu" else tensor.cpu().numpy()


@dataclass(frozen=True)
class Layer:
    """x @ weight.T + bias, then ReLU if `relu`."""

    weight_t: np.ndarray  # (in x out): a transposed view of the module's weight
    bias: np.ndarray | None
    relu: bool = False

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = x @ self.weight_t
        if self.bias is not None:
            out += self.bias
        if self.relu:
            np.maximum(out, 0, out=out)
        return out


def _is_relu(fn: object) -> bool:
    return fn is torch.relu or isinstance(fn, nn.ReLU)


def plain_layers(module: nn.Module) -> list[Layer]:
    """The module's forward as layers applied in order (Linear, ReLU, and TorchRec's MLP parts)."""
    if isinstance(module, nn.Linear):
        return [Layer(as_array(module.weight).T, None if module.bias is None else as_array(module.bias))]
    if isinstance(module, Perceptron):
        if not _is_relu(module._activation_fn):
            raise TypeError(f"no plain form for activation {module._activation_fn!r}")
        return _with_relu(plain_layers(module._linear))
    if isinstance(module, MLP):
        return plain_layers(module._mlp)
    if isinstance(module, DenseArch | OverArch):
        return plain_layers(module.model)
    if isinstance(module, nn.Sequential):
        layers: list[Layer] = []
        for child in module:
            if _is_relu(child):
                layers = _with_relu(layers)
            else:
                layers.extend(plain_layers(child))
        return layers
    raise TypeError(f"no plain form for {type(module).__name__}")


def _with_relu(layers: list[Layer]) -> list[Layer]:
    if not layers or layers[-1].relu:
        raise TypeError("a ReLU must follow a linear layer")
    last = layers[-1]
    return [*layers[:-1], Layer(last.weight_t, last.bias, relu=True)]


def run(layers: Sequence[Layer], x: np.ndarray) -> np.ndarray:
    for layer in layers:
        x = layer(x)
    return x
