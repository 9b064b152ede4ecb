"""Feed-forward classifiers shared by the analyses' networks (torch).

Owns :class:`FeedForward` (input standardisation, hidden layers, one sigmoid output, with
Kaiming-normal weights and standard-normal biases as the Punzi-net reference code initialises
them) and :func:`deterministic` (deterministic torch algorithms with a fixed thread count, the
previous state restored). The invisible-Z' Punzi-net (``PunziNetwork``) and the tau-tau
resonance search's range classifiers are built on them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from zprime.errors import ConfigError

__all__ = ["FeedForward", "deterministic"]


class FeedForward(nn.Module):
    """Feed-forward network: standardisation, hidden layers, one sigmoid output.

    The input mean and standard deviation are buffers, saved with the weights.
    """

    def __init__(
        self,
        n_inputs: int,
        hidden_layers: Sequence[int],
        activation: str = "tanh",
        mean: np.ndarray | None = None,
        std: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        acts: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "silu": nn.SiLU}
        if activation not in acts:
            raise ConfigError(f"network: unknown activation '{activation}'")
        layers: list[nn.Module] = []
        width = n_inputs
        for h in hidden_layers:
            layers += [nn.Linear(width, int(h)), acts[activation]()]
            width = int(h)
        layers.append(nn.Linear(width, 1))
        self.body = nn.Sequential(*layers)
        for layer in self.body:
            if isinstance(layer, nn.Linear):
                # [PL] train.weights_init: Kaiming-normal weights, standard-normal biases
                nn.init.kaiming_normal_(layer.weight)
                nn.init.normal_(layer.bias)
        m = np.zeros(n_inputs) if mean is None else np.asarray(mean)
        s = np.ones(n_inputs) if std is None else np.asarray(std)
        self.register_buffer("mean", torch.as_tensor(m, dtype=torch.float32).clone())
        self.register_buffer("std", torch.as_tensor(s, dtype=torch.float32).clone())

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid output for raw (unstandardised) inputs ``x`` [n, n_inputs]."""
        return self.body((x - self.mean) / self.std).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Network output in [0, 1] for raw inputs ``x`` [n, n_inputs]."""
        return torch.sigmoid(self.logits(x))


@contextlib.contextmanager
def deterministic(threads: int) -> Iterator[None]:
    """Deterministic algorithms and a fixed thread count; the previous state is restored."""
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    prev_threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev_det, warn_only=prev_warn)
        torch.set_num_threads(prev_threads)
