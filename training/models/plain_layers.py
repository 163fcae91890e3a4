"""A stack of linear layers and activations as plain function calls, for serving's forward.

Serving runs the towers' and the ranker's small MLPs once per request on a few hundred rows, where each
nn.Module call (hooks, dispatch, the nesting of TorchRec's DenseArch > MLP > Sequential > Perceptron >
Linear) costs as much as the matrix product inside it: the ranker's dense and over arches took 236 us
through their modules against 110 us as the same F.linear and relu calls (measured here, 100 rows).
The functions hold the modules' own parameters, so the numbers are the modules'
(tests/training/test_model_bags.py compares them with the modules' forward).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchrec.models.dlrm import DenseArch, OverArch
from torchrec.modules.mlp import MLP, Perceptron

Layer = Callable[[torch.Tensor], torch.Tensor]


def plain_layers(module: nn.Module) -> list[Layer]:
    """The module's forward as functions applied in order (Linear, ReLU, and TorchRec's MLP parts)."""
    if isinstance(module, nn.Linear):
        return [functools.partial(F.linear, weight=module.weight, bias=module.bias)]
    if isinstance(module, nn.ReLU):
        return [torch.relu]
    if isinstance(module, Perceptron):
        return [*plain_layers(module._linear), module._activation_fn]
    if isinstance(module, MLP):
        return plain_layers(module._mlp)
    if isinstance(module, DenseArch | OverArch):
        return plain_layers(module.model)
    if isinstance(module, nn.Sequential):
        return [layer for child in module for layer in plain_layers(child)]
    raise TypeError(f"no plain form for {type(module).__name__}")


def run(layers: Sequence[Layer], x: torch.Tensor) -> torch.Tensor:
    for layer in layers:
        x = layer(x)
    return x
