"""The range classifiers of the tau-tau resonance search: one MLP per range of M_recoil(mu mu).

The talk (``shared/papers/talk-2022-dark-sector-belle2.md``) says that after the pre-selection
"8 neural networks (MLPs), each trained for one range of M_recoil(mu mu)" select the events; it
gives neither the ranges nor the inputs, the architecture, the loss or the working points.
**Our choices**:

- ranges: eight of equal width in M_recoil over the scan's 3.6-10.0 GeV (:data:`DEFAULT_EDGES`);
  a range's network trains on the events (signal and background) with M_recoil inside the range
  widened by ``margin_gev`` on both sides, so that the hypotheses near an edge are covered;
- inputs: :data:`~zprime.analyses.tautau_resonance.selection.FEATURES` (the mu mu system and
  the other two tracks relative to the recoil, c.m. frame); M_recoil itself is not an input, so
  that the network cannot sculpt a peak;
- architecture: :class:`zprime.analyses.mlp.FeedForward` (standardised inputs, two tanh layers
  of 32, sigmoid output);
- training signal: samples spread continuously over the range's X masses (the caller's
  mass-continuum samples, flat in the mass), not the simulated mass points: the M_recoil
  resolution (a few MeV) is far finer than any affordable spacing of points, and the inputs
  fix M_recoil (the muon momenta and the recoil momentum give E*_mumu and M_mumu), so a network
  trained on discrete masses learns them and rejects the signal between them;
- loss: binary cross-entropy with the signal and the background classes at equal total weight,
  background events with their luminosity weights; Adam, mini batches, the best epoch on a
  validation part (early stopping); seeded and deterministic;
- working point: the output cut that maximises the Punzi figure of merit
  ``eps / (a / 2 + sqrt(B))`` (a = 3; G. Punzi, arXiv:physics/0308063) on the validation part,
  with B the expected background at the luminosity in a window of +-2 resolution widths around
  the signal masses (given by the caller as per-event window membership weights).

Arrays in, a :class:`RangeClassifier` out; saving and loading with :func:`save` / :func:`load`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from zprime._util import atomic_path
from zprime.analyses.mlp import FeedForward, deterministic
from zprime.errors import ConfigError, InputError

__all__ = [
    "DEFAULT_EDGES",
    "RangeClassifier",
    "load",
    "punzi_working_point",
    "save",
    "train_range",
]

F64 = NDArray[np.float64]

DEFAULT_EDGES: tuple[float, ...] = tuple(np.linspace(3.6, 10.0, 9).round(6))
"""Edges of the eight M_recoil ranges, GeV (our choice: equal widths over 3.6-10.0 GeV)."""

PUNZI_A = 3.0
"""Significance of the Punzi figure of merit, in sigma (Punzi's a; the invisible-Z' loss's)."""


@dataclass
class RangeClassifier:
    """A trained classifier of one M_recoil range and its working point."""

    range_gev: tuple[float, float]
    features: tuple[str, ...]
    network: FeedForward
    cut: float
    hidden_layers: tuple[int, ...]
    history: dict[str, list[float]]

    def predict(self, x: F64) -> F64:
        """Network output in [0, 1] for raw inputs ``x`` (n, n_features)."""
        xa = np.asarray(x, dtype=np.float32)
        if xa.ndim != 2 or xa.shape[1] != len(self.features):
            raise InputError(
                f"range classifier {self.range_gev}: inputs of shape {xa.shape}, need (n, "
                f"{len(self.features)})"
            )
        with torch.no_grad():
            out = self.network(torch.as_tensor(xa))
        return out.numpy().astype(np.float64)

    def passes(self, x: F64) -> NDArray[np.bool_]:
        """Whether each event passes the working point."""
        return self.predict(x) > self.cut


def _check_inputs(name: str, x: Any, w: Any, n_features: int | None) -> tuple[F64, F64]:
    xa = np.asarray(x, dtype=np.float64)
    wa = np.asarray(w, dtype=np.float64)
    if xa.ndim != 2 or wa.shape != (xa.shape[0],):
        raise InputError(
            f"{name}: features (n, k) and weights (n,) needed, got {xa.shape}, {wa.shape}"
        )
    if n_features is not None and xa.shape[1] != n_features:
        raise InputError(f"{name}: {xa.shape[1]} features, need {n_features}")
    if not (np.all(np.isfinite(xa)) and np.all(np.isfinite(wa))) or np.any(wa < 0):
        raise InputError(f"{name}: features and weights must be finite, weights >= 0")
    if xa.shape[0] == 0 or wa.sum() <= 0:
        raise InputError(f"{name}: no events (or zero total weight)")
    return xa, wa


def punzi_working_point(
    score_sig: F64,
    w_sig: F64,
    score_bkg: F64,
    w_bkg: F64,
    *,
    a: float = PUNZI_A,
    n_cuts: int = 200,
) -> tuple[float, float]:
    """The output cut that maximises ``eps / (a / 2 + sqrt(B))``.

    Parameters
    ----------
    score_sig, w_sig
        Network outputs of the signal events and their weights (eps = passing weight / total).
    score_bkg, w_bkg
        Outputs of the background events and their expected counts (B = passing sum).

    Returns
    -------
    (float, float)
        The cut and the figure of merit there.
    """
    cuts = np.quantile(np.concatenate([score_sig, score_bkg]), np.linspace(0.0, 0.995, n_cuts))
    tot = float(np.sum(w_sig))
    best_cut, best_fom = 0.0, -math.inf
    for c in np.unique(cuts):
        eps = float(np.sum(w_sig[score_sig > c])) / tot
        b = float(np.sum(w_bkg[score_bkg > c]))
        fom = eps / (a / 2.0 + math.sqrt(max(b, 0.0)))
        if fom > best_fom:
            best_cut, best_fom = float(c), fom
    return best_cut, best_fom


def train_range(
    range_gev: tuple[float, float],
    features: Sequence[str],
    x_sig: Any,
    w_sig: Any,
    x_bkg: Any,
    w_bkg: Any,
    *,
    window_sig: Any | None = None,
    window_bkg: Any | None = None,
    hidden_layers: Sequence[int] = (32, 32),
    epochs: int = 60,
    batch_size: int = 4096,
    learning_rate: float = 3e-3,
    validation_fraction: float = 0.3,
    patience: int = 8,
    seed: int = 0,
    threads: int = 1,
) -> RangeClassifier:
    """Train the classifier of one M_recoil range (module docstring).

    Parameters
    ----------
    range_gev
        The range (its events are chosen by the caller).
    features
        Names of the columns of ``x_sig`` / ``x_bkg``.
    x_sig, w_sig
        Signal features (n, k) and weights (the caller's prior over masses and models).
    x_bkg, w_bkg
        Background features and their expected counts at the luminosity.
    window_sig, window_bkg
        Optional per-event weights of the windows used for the working point (1 inside the
        +-2 sigma window of a hypothesis, 0 outside; default 1: the whole range).

    Returns
    -------
    RangeClassifier
    """
    lo, hi = range_gev
    if not lo < hi:
        raise ConfigError(f"train_range: range {range_gev!r} must increase")
    if not 0.0 < validation_fraction < 1.0:
        raise ConfigError("train_range: validation_fraction must be in (0, 1)")
    xs, ws = _check_inputs("signal", x_sig, w_sig, len(features))
    xb, wb = _check_inputs("background", x_bkg, w_bkg, len(features))
    ws_win = np.ones_like(ws) if window_sig is None else np.asarray(window_sig, dtype=float)
    wb_win = np.ones_like(wb) if window_bkg is None else np.asarray(window_bkg, dtype=float)
    rng = np.random.default_rng(seed)
    x = np.concatenate([xs, xb])
    y = np.concatenate([np.ones(len(xs)), np.zeros(len(xb))])
    # classes at equal total weight (the background's luminosity weights keep their shape)
    w = np.concatenate([ws / ws.sum(), wb / wb.sum()])
    val = rng.random(len(x)) < validation_fraction
    mean = x[~val].mean(axis=0)
    std = np.where(x[~val].std(axis=0) > 0, x[~val].std(axis=0), 1.0)
    with deterministic(threads):
        torch.manual_seed(int(rng.integers(2**31)))
        net = FeedForward(len(features), hidden_layers, "tanh", mean, std)
        opt = torch.optim.Adam(net.parameters(), lr=learning_rate)
        loss_fn = nn.BCEWithLogitsLoss(reduction="none")
        xt = torch.as_tensor(x, dtype=torch.float32)
        yt = torch.as_tensor(y, dtype=torch.float32)
        wt = torch.as_tensor(w, dtype=torch.float32)
        tr_idx = np.flatnonzero(~val)
        va = torch.as_tensor(np.flatnonzero(val))
        w_tr_sum = float(w[~val].sum())
        best_state, best_loss, since = None, math.inf, 0
        history: dict[str, list[float]] = {"train": [], "validation": []}
        for _ in range(epochs):
            order = rng.permutation(tr_idx)
            total = 0.0
            for start in range(0, len(order), batch_size):
                idx = torch.as_tensor(order[start : start + batch_size])
                opt.zero_grad()
                # the mean over the epoch of sum(w l) / sum(w): each batch weighted by its share
                loss = (loss_fn(net.logits(xt[idx]), yt[idx]) * wt[idx]).sum() / w_tr_sum
                loss.backward()
                opt.step()
                total += float(loss.detach())
            with torch.no_grad():
                v = float((loss_fn(net.logits(xt[va]), yt[va]) * wt[va]).sum() / wt[va].sum())
            history["train"].append(total)
            history["validation"].append(v)
            if v < best_loss - 1e-7:
                best_loss, since = v, 0
                best_state = {k: t.clone() for k, t in net.state_dict().items()}
            else:
                since += 1
                if since >= patience:
                    break
        if best_state is not None:
            net.load_state_dict(best_state)
        net.eval()
        with torch.no_grad():
            score = torch.sigmoid(net.logits(xt[va])).numpy().astype(np.float64)
    # the validation events: the signal's first (x is the signal, then the background)
    vs, vb = val[: len(xs)], val[len(xs) :]
    n_vs = int(vs.sum())
    # the validation part stands for the whole sample: its background counts scale up
    frac_b = wb[vb].sum() / wb.sum() if wb[vb].sum() > 0 else 1.0
    cut, _ = punzi_working_point(
        score[:n_vs], (ws * ws_win)[vs], score[n_vs:], (wb * wb_win)[vb] / frac_b
    )
    return RangeClassifier(
        range_gev=(float(lo), float(hi)),
        features=tuple(features),
        network=net,
        cut=cut,
        hidden_layers=tuple(int(h) for h in hidden_layers),
        history=history,
    )


def save(model: RangeClassifier, path: str | Path) -> Path:
    """Write a classifier (weights, standardisation, cut, settings) atomically."""
    target = Path(path)
    payload = {
        "range_gev": list(model.range_gev),
        "features": list(model.features),
        "hidden_layers": list(model.hidden_layers),
        "cut": model.cut,
        "history": model.history,
        "state": model.network.state_dict(),
    }
    with atomic_path(target) as tmp:
        torch.save(payload, tmp)
    return target


def load(path: str | Path) -> RangeClassifier:
    """Read a classifier written by :func:`save` (a one-line error for a bad file)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such classifier file")
    try:
        payload = torch.load(p, weights_only=True)
        net = FeedForward(len(payload["features"]), payload["hidden_layers"], "tanh")
        net.load_state_dict(payload["state"])
    except Exception as exc:  # torch raises many types for a damaged file
        raise InputError(f"{p}: not a range classifier ({type(exc).__name__})") from None
    net.eval()
    return RangeClassifier(
        range_gev=(float(payload["range_gev"][0]), float(payload["range_gev"][1])),
        features=tuple(payload["features"]),
        network=net,
        cut=float(payload["cut"]),
        hidden_layers=tuple(payload["hidden_layers"]),
        history=dict(payload["history"]),
    )
