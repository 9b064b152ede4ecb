"""The Punzi-net's torch modules and how they are evaluated.

Owns :class:`PunziNetwork` (:class:`zprime.analyses.mlp.FeedForward`: input standardisation, tanh
hidden layers, a sigmoid output, and
the reference code's initialisation: Kaiming-normal weights, standard-normal biases),
:class:`PunziEnsemble` (the mean output of several networks), the context that switches on
deterministic algorithms with a fixed thread count, and the batched evaluation without
gradients.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from zprime.analyses.mlp import FeedForward, deterministic
from zprime.errors import ConfigError


class PunziNetwork(FeedForward):
    """Feed-forward network: standardisation, hidden layers, one sigmoid output
    (:class:`zprime.analyses.mlp.FeedForward`, the Punzi-net's name for it)."""


class PunziEnsemble(nn.Module):
    """The mean output of several :class:`PunziNetwork` members (``punzinet.ensemble``).

    Members share the inputs and the training/validation split and differ in their
    initialisation and batch order; averaging their outputs removes most of the dependence of
    one training on its seed (docs/punzinet.md, "Instability on the default samples").
    """

    def __init__(self, members: Sequence[PunziNetwork]) -> None:
        super().__init__()
        if not members:
            raise ConfigError("punzinet: an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mean of the members' outputs in [0, 1] for raw inputs ``x`` [n, n_inputs]."""
        return torch.stack([m(x) for m in self.members]).mean(dim=0)


_deterministic = deterministic


def _outputs(
    network: PunziNetwork | PunziEnsemble, x: torch.Tensor, batch: int = 1_000_000
) -> torch.Tensor:
    with torch.no_grad():
        parts = [network(x[i : i + batch]) for i in range(0, len(x), batch)]
    return torch.cat(parts) if parts else torch.zeros(0)
