"""The Punzi-net: a neural network trained on the Punzi figure of merit of all mass hypotheses.

PRL 130, 231801 (2023): "The final selection uses an artificial neural network, denoted as
Punzi-net [40], trained on simulated signal and background events, and specifically designed to
optimize a figure of merit [41] for all Z' mass hypotheses simultaneously." Reference [40] is
F. Abudinen et al., "Punzi-loss: a non-differentiable metric approximation for sensitivity
optimisation in the search for new particles", Eur. Phys. J. C 82, 121 (2022),
arXiv:2110.00810 (public code: github.com/feichtip/punzinet); [41] is G. Punzi, eConf C030908,
MODT002 (2003), arXiv:physics/0308063.

The loss
--------
For mass hypothesis i (the signal masses trained on) the search window is
``|M_recoil^2 - M_i^2| < N sigma(M_i^2)`` with ``sigma`` the signal M_recoil^2 resolution and
``N = window_sigmas`` (2 in the reference code, ``set_range_index(..., n_sigma=2)``). With the
network output ``y`` in [0, 1] weighting every event,

    eps_i = sum_{signal of mass i in window i} w_j y_j / W_i       (efficiency)
    B_i   = L * sum_{background in window i} w_j y_j               (expected background events)
    sigma_min,i = [c + a sqrt(B_i) + (b/2) sqrt(b^2 + 4 a sqrt(B_i) + 4 B_i)] / (eps_i L)

where ``w`` are the event weights (fb; yield = w L), ``W_i`` the summed weight of all *generated*
signal events of mass i (so eps_i is the efficiency relative to the generated sample), ``L`` the
luminosity, and ``c = b^2/2`` (Punzi's Gaussian-approximation formula, the one the PRL's authors
quote) or ``c = a^2/8 + 9 b^2/13`` (Punzi's improved fit to the exact Poisson result, used by the
reference code; ``refined_constant``). ``sigma_min`` is the smallest cross section (fb) for which
the search has a discovery at ``a`` sigma with probability given by ``b`` sigma
(a = 3, b = 1.28155 = Phi^-1(0.90) in the reference code). The loss is the **mean** of sigma_min,i
over the hypotheses, as in the reference code (``torch.mean`` of the per-mass values). Replacing
the hard cut by the output makes eps and B differentiable ("non-differentiable metric
approximation").

In the loss (not in the reported figures of merit) B_i gets ``background_floor`` mean background
event weights of window i added: the simulated sample cannot resolve less than about one event,
and without it the loss pays without bound for removing the last simulated events of a window.

Training, as the reference code (``train.py``, ``examples/punzi_training.ipynb``) does it:

1. a 4-8-4-1 tanh network with a sigmoid output, Kaiming-normal weights and normal biases;
2. pre-training with a weighted binary cross-entropy (signal and background classes with equal
   total weight, background events with their luminosity weights, signal events with ``w/W_i``),
   plain SGD (lr 1) on shuffled mini-batches of 4096;
3. training on the Punzi loss, full batch (the loss needs whole-window sums), plain SGD
   (lr 0.05);

each phase with ``ReduceLROnPlateau`` (factor 0.5, patience 10 and 20 epochs). Unlike the
reference code we step the schedule on the validation loss and stop early, keeping the best
epoch. The signal masses alternate between training and test hypotheses (every other one, the
highest always trains); the background splits at random into training (+ validation) and test
events; the record's figure of merit is measured on the test part.

Only events inside at least one training window enter either phase (as in the reference code).
Inputs are standardised with the mean and standard deviation of the training events, stored with
the network. Everything is seeded and runs with ``torch.use_deterministic_algorithms(True)`` and
a fixed number of threads, so a seed gives bitwise the same network on the same machine.

The four inputs are the c.m.-frame variables of the PRL (columns of the reconstructed schema,
``docs/event-schema.md``): ``pt_thrust_cm``, ``pt_hi_lo_cm``, ``pl_hi_lo_cm``, ``pt_mumu_cm``;
``m_recoil2`` places events in windows and ``weight`` is the cross section per event (fb).
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import torch
from torch import nn

from zprime._util import atomic_path, package_versions
from zprime.config import PunziNetConfig
from zprime.errors import ConfigError, InputError

log = logging.getLogger(__name__)

__all__ = [
    "FEATURES",
    "MASS2_COLUMN",
    "OUTPUT_COLUMN",
    "SCAN_CUTS",
    "FomRow",
    "FomTable",
    "PunziEnsemble",
    "PunziNetwork",
    "SignalSample",
    "TrainedPunziNet",
    "Windows",
    "apply",
    "default_resolution",
    "load",
    "make_windows",
    "predict",
    "punzi_fom",
    "punzi_loss",
    "read_training_files",
    "save",
    "sigma_min",
    "toy_samples",
    "train",
]

FEATURES: tuple[str, ...] = ("pt_thrust_cm", "pt_hi_lo_cm", "pl_hi_lo_cm", "pt_mumu_cm")
"""The four c.m.-frame inputs of the PRL (names of the reconstructed schema)."""
MASS2_COLUMN = "m_recoil2"
WEIGHT_COLUMN = "weight"
OUTPUT_COLUMN = "punzinet"
PRL_OUTPUT_CUT = 0.5
"""The PRL's cut on the network output, used by the training-time figure-of-merit report."""
FILE_FORMAT = "zprime.analyses.invisible_zprime.punzinet"
FILE_VERSION = 1

Resolution = Callable[[np.ndarray], np.ndarray]
Events = ak.Array | Mapping[str, Any]

# PRL 130, 231801: "The M_recoil^2 resolution ... ranges from 0.06 GeV^2/c^4 (at 80 GeV^2/c^4)
# to 0.23 GeV^2/c^4 (at 9 GeV^2/c^4)" (shared/ANALYSIS.md). Fallback resolution only: the
# binning module measures sigma(M^2) on the simulated signal.
_PRL_RESOLUTION_POINTS = ((9.0, 0.23), (80.0, 0.06))


def default_resolution(m2: np.ndarray | float) -> np.ndarray:
    """Fallback signal M_recoil^2 resolution sigma(M^2), GeV^2.

    Linear interpolation in M^2 between the PRL's two quoted values, 0.23 GeV^2 at
    M^2 = 9 GeV^2 and 0.06 GeV^2 at 80 GeV^2, held constant outside that range. The analysis
    should pass the resolution measured on the simulated signal instead
    (``zprime.analyses.invisible_zprime.binning``).
    """
    (x0, y0), (x1, y1) = _PRL_RESOLUTION_POINTS
    return np.interp(np.asarray(m2, dtype=np.float64), [x0, x1], [y0, y1])


# ---------------------------------------------------------------------------------------------
# figure of merit


def sigma_min(
    efficiency: Any,
    background: Any,
    *,
    luminosity_fb: float,
    a: float = 3.0,
    b: float = 1.28155,
    refined_constant: bool = False,
) -> Any:
    """Punzi's minimum detectable cross section, fb (numpy arrays or torch tensors).

    ``sigma_min = [c + a sqrt(B) + (b/2) sqrt(b^2 + 4 a sqrt(B) + 4 B)] / (eps L)`` with
    ``c = b^2/2``, or ``c = a^2/8 + 9 b^2/13`` if ``refined_constant`` (G. Punzi, eConf C030908,
    MODT002 (2003), arXiv:physics/0308063).

    Parameters
    ----------
    efficiency
        Signal efficiency eps (fraction of all generated signal events).
    background
        Expected background events B at the luminosity (not per fb).
    luminosity_fb
        Integrated luminosity L, fb^-1.
    a, b
        Significance of the discovery and of the exclusion power, in Gaussian sigmas.
    refined_constant
        Use Punzi's improved constant term.
    """
    const = a * a / 8.0 + 9.0 * b * b / 13.0 if refined_constant else b * b / 2.0
    root_b = background**0.5
    numerator = const + a * root_b + 0.5 * b * (b * b + 4.0 * a * root_b + 4.0 * background) ** 0.5
    return numerator / (efficiency * luminosity_fb)


# ---------------------------------------------------------------------------------------------
# inputs


@dataclass(frozen=True)
class SignalSample:
    """Selected signal events of one mass hypothesis.

    Attributes
    ----------
    mass_gev
        Z' mass, GeV (the window is centred on its square).
    events
        Columns ``FEATURES``, ``m_recoil2`` and ``weight`` (an awkward array or a mapping of
        column name to array).
    total_weight
        Summed weight of all *generated* events of this mass (fb; the signal file's
        ``sigma_fb``): the efficiency denominator.
    """

    mass_gev: float
    events: Any
    total_weight: float


def _as_signal_samples(signals: Any) -> list[SignalSample]:
    if isinstance(signals, Mapping):
        items = [SignalSample(float(m), ev, float(tot)) for m, (ev, tot) in signals.items()]
    else:
        items = []
        for s in signals:
            if isinstance(s, SignalSample):
                items.append(s)
            else:
                m, ev, tot = s
                items.append(SignalSample(float(m), ev, float(tot)))
    if not items:
        raise InputError("punzinet: no signal samples given")
    masses = [s.mass_gev for s in items]
    if len(set(masses)) != len(masses):
        raise InputError(f"punzinet: duplicate signal masses in {sorted(masses)}")
    for s in items:
        if not (s.total_weight > 0.0 and math.isfinite(s.total_weight)):
            raise InputError(
                f"punzinet: signal M = {s.mass_gev} GeV: total generated weight must be positive, "
                f"got {s.total_weight}"
            )
    return sorted(items, key=lambda s: s.mass_gev)


def _column(events: Any, name: str, where: str) -> np.ndarray:
    try:
        if isinstance(events, ak.Array):
            if name not in ak.fields(events):
                raise KeyError(name)
            col = ak.to_numpy(events[name])
        else:
            col = events[name]
    except KeyError:
        raise InputError(f"{where}: missing column '{name}'") from None
    arr = np.asarray(col, dtype=np.float64)
    if arr.ndim != 1:
        raise InputError(f"{where}: column '{name}' is not a flat numeric column")
    return arr


def _extract(
    events: Any, features: Sequence[str], where: str, *, need_truth: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x [n, n_features], m_recoil2 [n], weight [n]) as float64, checked for NaN/inf."""
    cols = [_column(events, f, where) for f in features]
    n = len(cols[0]) if cols else 0
    x = np.stack(cols, axis=1) if cols else np.zeros((n, 0))
    if need_truth:
        m2 = _column(events, MASS2_COLUMN, where)
        w = _column(events, WEIGHT_COLUMN, where)
    else:
        m2 = np.zeros(n)
        w = np.zeros(n)
    for name, arr in [*zip(features, x.T, strict=True), (MASS2_COLUMN, m2), (WEIGHT_COLUMN, w)]:
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{where}: column '{name}' has NaN or infinite values")
    return x, m2, w


def _window_bounds(
    masses: np.ndarray, resolution: Resolution, n_sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    m2 = np.asarray(masses, dtype=np.float64) ** 2
    sigma = np.asarray(resolution(m2), dtype=np.float64)
    if sigma.shape != m2.shape or not np.all(np.isfinite(sigma) & (sigma > 0)):
        raise ConfigError(f"punzinet: resolution must be positive at M^2 = {m2.tolist()}")
    return m2 - n_sigma * sigma, m2 + n_sigma * sigma


# ---------------------------------------------------------------------------------------------
# windows and the differentiable loss


@dataclass
class Windows:
    """Which rows of an output vector enter which mass window, and with which weight.

    Signal row ``signal_rows[k]`` adds ``signal_weight[k] * y`` to the efficiency of window
    ``signal_window[k]`` (weight = w / W_i); background row ``background_rows[k]`` adds
    ``background_weight[k] * y`` to the expected background of window ``background_window[k]``
    (weight = w L, events). A background row appears once per window it falls in.
    """

    masses_gev: np.ndarray
    low: np.ndarray
    high: np.ndarray
    signal_rows: torch.Tensor
    signal_window: torch.Tensor
    signal_weight: torch.Tensor
    background_rows: torch.Tensor
    background_window: torch.Tensor
    background_weight: torch.Tensor

    @property
    def n_windows(self) -> int:
        """Number of mass hypotheses."""
        return len(self.masses_gev)

    def mean_background_weight(self) -> torch.Tensor:
        """Per window, the mean weight (events) of its background rows; 0 without any."""
        k = self.n_windows
        total = torch.zeros(k, dtype=torch.float64).index_add(
            0, self.background_window, self.background_weight
        )
        count = torch.zeros(k, dtype=torch.float64).index_add(
            0, self.background_window, torch.ones_like(self.background_weight)
        )
        return total / count.clamp_min(1.0)

    def sums(self, output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-window efficiency and expected background for per-row weights ``output``."""
        out = output.to(torch.float64)
        k = self.n_windows
        eps = torch.zeros(k, dtype=torch.float64).index_add(
            0, self.signal_window, out[self.signal_rows] * self.signal_weight
        )
        bkg = torch.zeros(k, dtype=torch.float64).index_add(
            0, self.background_window, out[self.background_rows] * self.background_weight
        )
        return eps, bkg


def make_windows(
    masses_gev: Sequence[float],
    signal_m2: Sequence[np.ndarray],
    signal_weight: Sequence[np.ndarray],
    background_m2: np.ndarray,
    background_weight: np.ndarray,
    *,
    luminosity_fb: float,
    resolution: Resolution = default_resolution,
    window_sigmas: float = 2.0,
    signal_offset: int = 0,
    background_offset: int | None = None,
) -> Windows:
    """Build the window membership of signal and background rows.

    Parameters
    ----------
    masses_gev
        The hypotheses; ``signal_m2[i]`` / ``signal_weight[i]`` belong to ``masses_gev[i]``.
    signal_m2, signal_weight
        Per hypothesis: M_recoil^2 and the efficiency weight ``w / W_i`` of its signal events.
    background_m2, background_weight
        M_recoil^2 and weight (fb) of the background events.
    luminosity_fb
        Luminosity; background weights are multiplied by it (events).
    resolution
        sigma(M^2) in GeV^2.
    window_sigmas
        Half-width of the windows in units of sigma.
    signal_offset, background_offset
        Row of the first signal event and of the first background event in the output vector
        (default: the signal events of all hypotheses in order, then the background).
    """
    masses = np.asarray(masses_gev, dtype=np.float64)
    low, high = _window_bounds(masses, resolution, window_sigmas)
    sig_rows, sig_win, sig_w = [], [], []
    row = signal_offset
    for i, (m2, w) in enumerate(zip(signal_m2, signal_weight, strict=True)):
        m2 = np.asarray(m2, dtype=np.float64)
        inside = np.flatnonzero((m2 > low[i]) & (m2 < high[i]))
        sig_rows.append(inside + row)
        sig_win.append(np.full(len(inside), i))
        sig_w.append(np.asarray(w, dtype=np.float64)[inside])
        row += len(m2)
    if background_offset is None:
        background_offset = row
    bm2 = np.asarray(background_m2, dtype=np.float64)
    bw = np.asarray(background_weight, dtype=np.float64) * luminosity_fb
    bkg_rows, bkg_win, bkg_w = [], [], []
    for i in range(len(masses)):
        inside = np.flatnonzero((bm2 > low[i]) & (bm2 < high[i]))
        bkg_rows.append(inside + background_offset)
        bkg_win.append(np.full(len(inside), i))
        bkg_w.append(bw[inside])

    def _cat_long(parts: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.concatenate(parts).astype(np.int64))

    def _cat_f64(parts: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.concatenate(parts).astype(np.float64))

    return Windows(
        masses,
        low,
        high,
        _cat_long(sig_rows),
        _cat_long(sig_win),
        _cat_f64(sig_w),
        _cat_long(bkg_rows),
        _cat_long(bkg_win),
        _cat_f64(bkg_w),
    )


def punzi_loss(
    output: torch.Tensor,
    windows: Windows,
    *,
    luminosity_fb: float,
    a: float = 3.0,
    b: float = 1.28155,
    refined_constant: bool = False,
    background_floor: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Punzi loss: mean over the hypotheses of sigma_min with output-weighted eps and B.

    Parameters
    ----------
    output
        Network output per row of ``windows``.
    windows
        Window membership and weights (:func:`make_windows`).
    luminosity_fb, a, b, refined_constant
        As for :func:`sigma_min`.
    background_floor
        ``B`` of window i gets ``background_floor`` times the mean weight (events) of its
        background rows added: a simulated sample cannot tell a background below about one of
        its events from zero. 0 (the default) is the bare loss of [PL].

    Returns
    -------
    (loss, sigma_min per window)
        Scalar loss (fb) and the per-window values (float64 tensors, differentiable in
        ``output``).
    """
    eps, bkg = windows.sums(output)
    if background_floor > 0.0:
        bkg = bkg + background_floor * windows.mean_background_weight()
    # A window without background has B = 0 and an infinite derivative of sqrt(B) times a zero
    # derivative of B: the floor keeps the product 0 instead of NaN; it changes no value above
    # 1e-12 events.
    bkg = bkg.clamp_min(1e-12)
    sig = sigma_min(
        eps, bkg, luminosity_fb=luminosity_fb, a=a, b=b, refined_constant=refined_constant
    )
    return sig.mean(), sig


# ---------------------------------------------------------------------------------------------
# network


class PunziNetwork(nn.Module):
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
            raise ConfigError(f"punzinet: unknown activation '{activation}'")
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


@dataclass
class TrainedPunziNet:
    """A trained network with everything needed to apply and document it.

    Attributes
    ----------
    network
        The torch module (input standardisation included).
    features
        Input column names, in order.
    config
        The training configuration.
    record
        Training record: losses per epoch of both phases, best epochs, timings, sample sizes,
        windows, and the validation figure of merit with and without the network cut.
    versions
        Package versions at training time.
    """

    network: PunziNetwork | PunziEnsemble
    features: tuple[str, ...]
    config: PunziNetConfig
    record: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    def predict(self, events: Any) -> np.ndarray:
        """Network output per event (see :func:`predict`)."""
        return predict(self, events)

    def fom_table(self) -> FomTable:
        """The figure of merit measured at the end of training (on the test part: see
        :func:`train`), with the cut it was measured at."""
        names = list(FomRow.__dataclass_fields__)
        rows = [FomRow(**{k: r[k] for k in names if k in r}) for r in self.record.get("fom", [])]
        split = self.record.get("fom_split", "test")
        return FomTable(
            rows,
            float(self.record.get("fom_cut", PRL_OUTPUT_CUT)),
            float(self.record.get("luminosity_fb", math.nan)),
            note=TEST_NOTE if split == "test" else "",
        )

    def cut_scan(self) -> dict[str, Any]:
        """The per-test-mass scan of the figure of merit versus the output cut (on the test
        part): ``{"cuts": [...], "rows": [{"mass_gev", "efficiency", "background",
        "sigma_min_fb"}, ...]}``, one list entry per cut in each row."""
        return dict(self.record.get("cut_scan", {"cuts": list(SCAN_CUTS), "rows": []}))


@contextlib.contextmanager
def _deterministic(threads: int) -> Iterator[None]:
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


def _outputs(
    network: PunziNetwork | PunziEnsemble, x: torch.Tensor, batch: int = 1_000_000
) -> torch.Tensor:
    with torch.no_grad():
        parts = [network(x[i : i + batch]) for i in range(0, len(x), batch)]
    return torch.cat(parts) if parts else torch.zeros(0)


def predict(model: TrainedPunziNet, events: Any, *, batch_size: int = 1_000_000) -> np.ndarray:
    """Network output in [0, 1] for every event (float64 array).

    Raises
    ------
    InputError
        A feature column is missing or holds NaN/infinite values.
    """
    x, _, _ = _extract(events, model.features, "punzinet input", need_truth=False)
    model.network.eval()
    out = _outputs(model.network, torch.from_numpy(x.astype(np.float32)), batch_size)
    return out.numpy().astype(np.float64)


def apply(model: TrainedPunziNet, events: Any, *, column: str = OUTPUT_COLUMN) -> Any:
    """``events`` with the network output added as column ``column`` (default ``punzinet``).

    An awkward array gets a new field; a mapping is copied into a new dict.
    """
    out = predict(model, events)
    if isinstance(events, ak.Array):
        return ak.with_field(events, out, column)
    return {**dict(events), column: out}


# ---------------------------------------------------------------------------------------------
# training


@dataclass
class _Part:
    """Events of one role as numpy arrays: inputs, M_recoil^2 and weight.

    For signal the weight is the efficiency weight ``w / W_i`` (times the split's scale); for
    background the cross section per event in fb (times the split's scale).
    """

    x: np.ndarray
    m2: np.ndarray
    w: np.ndarray

    def take(self, idx: np.ndarray, scale: float = 1.0) -> _Part:
        """The rows ``idx`` with weights multiplied by ``scale``."""
        return _Part(self.x[idx], self.m2[idx], self.w[idx] * scale)

    def inside(self, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """Mask of the rows inside at least one of the windows ``(low, high)``."""
        m = np.zeros(len(self.m2), dtype=bool)
        for lo, hi in zip(low, high, strict=True):
            m |= (self.m2 > lo) & (self.m2 < hi)
        return m


@dataclass
class _Split:
    """One split (training or validation) of the in-window events, ready for torch."""

    x: torch.Tensor  # [n, n_features] float32, signal rows first (by hypothesis), then background
    label: torch.Tensor  # float32
    bce_weight: torch.Tensor  # float32
    windows: Windows
    n_signal: list[int]
    n_background: int


@dataclass
class _Prepared:
    """Everything :func:`train` needs: the torch splits and the numpy parts for the reports."""

    train: _Split
    val: _Split
    masses: np.ndarray  # every hypothesis, sorted
    low: np.ndarray
    high: np.ndarray
    is_train_mass: np.ndarray  # bool per hypothesis
    signal_all: list[_Part]  # per hypothesis: every selected event (weight w / W_i)
    background_train: _Part  # the training split (weights scaled to the full sample)
    background_test: _Part  # the test split (weights / test fraction)
    info: dict[str, Any]


def _split_indices(n: int, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """(rest, held) sorted index arrays; ``held`` has ``round(fraction n)`` random rows."""
    perm = rng.permutation(n)
    n_held = round(fraction * n)
    return np.sort(perm[n_held:]), np.sort(perm[:n_held])


def _build_split(
    masses: np.ndarray,
    sig: list[_Part],
    bkg: _Part,
    *,
    luminosity_fb: float,
    resolution: Resolution,
    window_sigmas: float,
) -> _Split:
    x = np.concatenate([s.x for s in sig] + [bkg.x], axis=0)
    n_sig = [len(s.m2) for s in sig]
    n_bkg = len(bkg.m2)
    windows = make_windows(
        masses,
        [s.m2 for s in sig],
        [s.w for s in sig],
        bkg.m2,
        bkg.w,
        luminosity_fb=luminosity_fb,
        resolution=resolution,
        window_sigmas=window_sigmas,
    )
    label = np.concatenate([np.ones(sum(n_sig)), np.zeros(n_bkg)])
    # BCE weights ([PL] prepare.set_weights): signal and background classes with the same
    # total; background by luminosity weight, signal by efficiency weight w/W_i (in [PL] every
    # signal mass has the same number of generated events, so its unit weights are w/W_i too).
    w_sig = np.concatenate([s.w for s in sig])
    tot_s, tot_b = float(w_sig.sum()), float(bkg.w.sum())
    if tot_s <= 0 or (n_bkg > 0 and tot_b <= 0):
        raise InputError("punzinet: signal and background need positive total weight")
    # a split may lack background in the training windows (tiny samples; a warning names the
    # windows): its BCE is then the signal term alone
    parts = [w_sig / tot_s] + ([bkg.w / tot_b] if n_bkg > 0 else [])
    bce = np.concatenate(parts) * len(label) / len(parts)
    return _Split(
        torch.from_numpy(x.astype(np.float32)),
        torch.from_numpy(label.astype(np.float32)),
        torch.from_numpy(bce.astype(np.float32)),
        windows,
        n_sig,
        n_bkg,
    )


def _mass_split(n: int) -> np.ndarray:
    """Training hypotheses among ``n`` sorted masses: the even indices (0, 2, 4, ...) and the
    last one.

    The other (odd) indices are the test masses, never seen in training ([PL] notebook: trained
    on every other simulated mass, ``mass_range = np.arange(100, 8800, 200)`` of samples in
    100 MeV steps). The highest mass always trains so that every test mass lies between two
    training masses: the network interpolates in mass, it is not asked to extrapolate (with the
    22 default masses the 8.5 GeV sample would otherwise be a test mass beyond the last
    training window, where the network removed nearly all of its signal). A single mass is a
    training mass (no test mass).
    """
    train = np.arange(n) % 2 == 0
    train[n - 1 :] = True
    return train


def _prepare(
    samples: list[SignalSample],
    background: Any,
    features: Sequence[str],
    *,
    config: PunziNetConfig,
    luminosity_fb: float,
    resolution: Resolution,
) -> _Prepared:
    masses = np.array([s.mass_gev for s in samples])
    low, high = _window_bounds(masses, resolution, config.window_sigmas)
    is_train = _mass_split(len(masses))
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 1]))
    vfrac = config.validation_fraction
    signal_all: list[_Part] = []
    train_sig: list[_Part] = []
    val_sig: list[_Part] = []
    for i, s in enumerate(samples):
        where = f"punzinet signal M = {s.mass_gev:g} GeV"
        x, m2, w = _extract(s.events, features, where)
        part = _Part(x, m2, w / s.total_weight)
        signal_all.append(part)
        if not is_train[i]:
            continue
        keep = np.flatnonzero((m2 > low[i]) & (m2 < high[i]))
        n = len(keep)
        tr, va = _split_indices(n, vfrac, rng)
        if len(tr) == 0 or len(va) == 0:
            raise InputError(
                f"{where}: only {n} events in its M_recoil^2 window [{low[i]:.4g}, "
                f"{high[i]:.4g}] GeV^2, too few to train and validate"
            )
        # each split estimates the full-sample efficiency: weights scaled by n / n_split
        train_sig.append(part.take(keep[tr], n / len(tr)))
        val_sig.append(part.take(keep[va], n / len(va)))
    xb, m2b, wb = _extract(background, features, "punzinet background")
    bkg = _Part(xb, m2b, wb)
    # only events inside some window (training or test) matter; the split is event by event,
    # so splitting the in-window events is a random split of the whole sample restricted to them
    bkg = bkg.take(np.flatnonzero(bkg.inside(low, high)))
    nb = len(bkg.m2)
    rest, test = _split_indices(nb, 1.0 - config.training_fraction, rng)
    tr, va = _split_indices(len(rest), vfrac, rng)
    tr, va = rest[tr], rest[va]
    if nb == 0:
        raise InputError("punzinet background: no events inside the mass windows")
    # each split estimates the full sample: weights scaled by n / n_split (for the test split
    # that is 1 / test fraction: an honest estimate of an independent sample of its size)
    bkg_train = bkg.take(tr, nb / max(1, len(tr)))
    bkg_val = bkg.take(va, nb / max(1, len(va)))
    bkg_test = bkg.take(test, nb / max(1, len(test)))
    tm = masses[is_train]
    in_train = [
        p.take(np.flatnonzero(p.inside(low[is_train], high[is_train])))
        for p in (bkg_train, bkg_val)
    ]
    kw: dict[str, Any] = {
        "luminosity_fb": luminosity_fb,
        "resolution": resolution,
        "window_sigmas": config.window_sigmas,
    }
    train_split = _build_split(tm, train_sig, in_train[0], **kw)
    val_split = _build_split(tm, val_sig, in_train[1], **kw)
    empty = [
        f"{m:g}"
        for k, m in enumerate(tm)
        if not np.any(train_split.windows.background_window.numpy() == k)
    ]
    if empty:
        # sigma_min there depends on the efficiency only: the loss pushes those windows'
        # signal to output 1 whatever the background would do
        log.warning(
            "punzinet: no training background in the window(s) of M = %s GeV", ", ".join(empty)
        )
    info = {
        "masses_gev": masses.tolist(),
        "train_masses_gev": tm.tolist(),
        "test_masses_gev": masses[~is_train].tolist(),
        "window_low_gev2": low.tolist(),
        "window_high_gev2": high.tolist(),
        "n_train_signal": train_split.n_signal,
        "n_train_background": train_split.n_background,
        "n_val_signal": val_split.n_signal,
        "n_val_background": val_split.n_background,
        "n_test_background": len(test),
        "windows_without_training_background": empty,
    }
    return _Prepared(
        train_split,
        val_split,
        masses,
        low,
        high,
        is_train,
        signal_all,
        bkg_train,
        bkg_test,
        info,
    )


def _progress_bar(enabled: bool) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}  val {task.fields[val]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )


def _fmt(x: float) -> str:
    return f"{x:.5g}" if math.isfinite(x) else "-"


class _EarlyStop:
    """Keeps the best state; says when ``patience`` epochs passed without relative gain."""

    def __init__(self, network: nn.Module, patience: int, min_delta: float) -> None:
        self.network = network
        self.patience = patience
        self.min_delta = min_delta
        self.best = math.inf
        self.best_epoch = -1
        self.state = {k: v.clone() for k, v in network.state_dict().items()}

    def update(self, value: float, epoch: int) -> bool:
        """Record ``value`` of ``epoch``; True if training should stop."""
        if value < self.best * (1.0 - self.min_delta) or (
            not math.isfinite(self.best) and math.isfinite(value)
        ):
            self.best, self.best_epoch = value, epoch
            self.state = {k: v.clone() for k, v in self.network.state_dict().items()}
        return epoch - self.best_epoch >= self.patience

    def restore(self) -> None:
        self.network.load_state_dict(self.state)


def _plateau(opt: torch.optim.Optimizer, patience: int, cfg: PunziNetConfig) -> Any:
    """[PL] train.py: ``ReduceLROnPlateau(mode='min', factor=0.5, patience=...)``, relative
    threshold 1e-4 (torch's default, = ``min_delta``)."""
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=cfg.lr_factor, patience=patience, threshold=cfg.min_delta
    )


def _bce_phase(
    net: PunziNetwork,
    train_s: _Split,
    val_s: _Split,
    cfg: PunziNetConfig,
    gen: torch.Generator,
    bar: Any,
) -> dict[str, Any]:
    losses: list[float] = []
    val_losses: list[float] = []
    lrs: list[float] = []
    if cfg.bce_epochs == 0:
        return {"bce_train": losses, "bce_val": val_losses, "bce_lr": lrs, "bce_best_epoch": -1}
    # [PL] train.bce_training: plain SGD (lr 1) on shuffled mini-batches, the rate halved when
    # the loss stalls; we monitor the validation loss instead of the training loss and keep the
    # best epoch
    opt = torch.optim.SGD(net.parameters(), lr=cfg.bce_learning_rate)
    sched = _plateau(opt, cfg.bce_lr_patience, cfg)
    loss_fn = nn.BCEWithLogitsLoss(reduction="none")
    stop = _EarlyStop(net, cfg.bce_patience, cfg.min_delta)
    task = bar.add_task("BCE pre-training", total=cfg.bce_epochs, loss="-", val="-")
    n = len(train_s.x)
    for epoch in range(cfg.bce_epochs):
        net.train()
        perm = torch.randperm(n, generator=gen)
        total, wsum = 0.0, 0.0
        for start in range(0, n, cfg.bce_batch_size):
            idx = perm[start : start + cfg.bce_batch_size]
            w = train_s.bce_weight[idx]
            loss = (loss_fn(net.logits(train_s.x[idx]), train_s.label[idx]) * w).sum() / w.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * float(w.sum())
            wsum += float(w.sum())
        losses.append(total / wsum)
        net.eval()
        with torch.no_grad():
            vl = loss_fn(net.logits(val_s.x), val_s.label) * val_s.bce_weight
            monitor = float(vl.sum() / val_s.bce_weight.sum())
        val_losses.append(monitor)
        lrs.append(float(opt.param_groups[0]["lr"]))
        bar.update(task, advance=1, loss=_fmt(losses[-1]), val=_fmt(monitor))
        sched.step(monitor)
        if stop.update(monitor, epoch):
            break
    stop.restore()
    return {
        "bce_train": losses,
        "bce_val": val_losses,
        "bce_lr": lrs,
        "bce_best_epoch": stop.best_epoch,
    }


def _punzi_phase(
    net: PunziNetwork,
    train_s: _Split,
    val_s: _Split,
    cfg: PunziNetConfig,
    luminosity_fb: float,
    bar: Any,
) -> dict[str, Any]:
    losses: list[float] = []
    val_losses: list[float] = []
    lrs: list[float] = []
    if cfg.punzi_epochs == 0:
        return {
            "punzi_train": losses,
            "punzi_val": val_losses,
            "punzi_lr": lrs,
            "punzi_best_epoch": -1,
        }
    kw: dict[str, Any] = {
        "luminosity_fb": luminosity_fb,
        "a": cfg.a,
        "b": cfg.b,
        "refined_constant": cfg.refined_constant,
        "background_floor": cfg.background_floor,
    }
    # [PL] train.punzi_training: full batch (the loss needs whole-window sums), plain SGD
    # (notebook: lr 0.05, 500 epochs), ReduceLROnPlateau(factor 0.5, patience 20); we step the
    # schedule on the validation loss and keep the best epoch (early stopping)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.punzi_learning_rate)
    sched = _plateau(opt, cfg.punzi_lr_patience, cfg)
    stop = _EarlyStop(net, cfg.patience, cfg.min_delta)
    task = bar.add_task("Punzi-loss training", total=cfg.punzi_epochs, loss="-", val="-")

    def _val() -> float:
        net.eval()
        with torch.no_grad():
            return float(punzi_loss(net(val_s.x), val_s.windows, **kw)[0])

    # epoch -1: the network after pre-training
    stop.update(_val(), -1)
    for epoch in range(cfg.punzi_epochs):
        net.train()
        loss, _ = punzi_loss(net(train_s.x), train_s.windows, **kw)
        if not torch.isfinite(loss):
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        # the validation loss of the updated weights (the training loss is that of the weights
        # before the step)
        monitor = _val()
        val_losses.append(monitor)
        lrs.append(float(opt.param_groups[0]["lr"]))
        bar.update(task, advance=1, loss=_fmt(losses[-1]), val=_fmt(monitor))
        sched.step(monitor)
        if stop.update(monitor, epoch):
            break
    stop.restore()
    return {
        "punzi_train": losses,
        "punzi_val": val_losses,
        "punzi_lr": lrs,
        "punzi_best_epoch": stop.best_epoch,
    }


def _resolution_callable(resolution: Any) -> Resolution:
    """``resolution`` as a function of M^2: a callable, or an object with a ``sigma`` method
    (:class:`zprime.analyses.invisible_zprime.binning.ResolutionModel`)."""
    if hasattr(resolution, "sigma") and callable(resolution.sigma):
        return resolution.sigma  # type: ignore[no-any-return]
    if callable(resolution):
        return resolution  # type: ignore[no-any-return]
    raise ConfigError(f"punzinet: resolution must be callable, got {type(resolution).__name__}")


SCAN_CUTS: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 20))
"""Network output cuts of the per-mass scan of the figure of merit (0.05 ... 0.95)."""


def train(
    signals: Sequence[SignalSample] | Mapping[float, tuple[Any, float]],
    background: Any,
    *,
    config: PunziNetConfig | None = None,
    luminosity_fb: float,
    resolution: Resolution | Any = default_resolution,
    features: Sequence[str] = FEATURES,
    progress: bool = True,
    cut: float = PRL_OUTPUT_CUT,
) -> TrainedPunziNet:
    """Train the Punzi-net: weighted-BCE pre-training, then the Punzi loss of the training masses.

    The signal masses, sorted, alternate between training (even indices) and test (odd
    indices) hypotheses; the background events are split at random (seeded) into a training
    part (``training_fraction``, of which ``validation_fraction`` validates) and a test part.
    The figure of merit of the record is measured on the test part.

    Parameters
    ----------
    signals
        Selected signal samples, one per mass: :class:`SignalSample` objects, ``(mass, events,
        total_weight)`` tuples, or a mapping ``mass -> (events, total_weight)``. ``events`` hold
        the ``features``, ``m_recoil2`` and ``weight``; ``total_weight`` is the summed weight of
        all *generated* events of that mass (fb, the efficiency denominator).
    background
        Selected background events (all samples concatenated), same columns, weight in fb.
    config
        Network and training settings (default: :class:`~zprime.config.PunziNetConfig`).
    luminosity_fb
        Integrated luminosity at which the figure of merit is optimised, fb^-1.
    resolution
        Signal M_recoil^2 resolution sigma(M^2), GeV^2: a callable or an object with a
        ``sigma`` method such as :class:`zprime.analyses.invisible_zprime.binning.ResolutionModel`
        (the measured one the
        fit uses; default :func:`default_resolution`).
    features
        Input columns (default: the PRL's four).
    progress
        Show a rich progress bar with epoch and loss (on stderr).
    cut
        Network output cut of the figure-of-merit report (the pipeline passes
        ``selection.punzinet_min``).

    Returns
    -------
    TrainedPunziNet
        The network at the epoch of lowest validation loss, with its training record.

    Raises
    ------
    InputError
        Missing columns, NaN values, or a window without enough events.
    """
    cfg = config or PunziNetConfig()
    if luminosity_fb <= 0:
        raise ConfigError(f"punzinet: luminosity must be positive, got {luminosity_fb}")
    res = _resolution_callable(resolution)
    samples = _as_signal_samples(signals)
    feats = tuple(features)
    t0 = time.perf_counter()
    prep = _prepare(
        samples, background, feats, config=cfg, luminosity_fb=luminosity_fb, resolution=res
    )
    train_s, val_s = prep.train, prep.val
    x = train_s.x.to(torch.float64).numpy()
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std[std == 0] = 1.0
    t_prep = time.perf_counter() - t0
    members: list[PunziNetwork] = []
    member_records: list[dict[str, Any]] = []
    first: tuple[Any, ...] = ()
    with _deterministic(cfg.threads), _progress_bar(progress) as bar:
        for k in range(cfg.ensemble):
            # the split is fixed by cfg.seed (in _prepare); member k starts from seed + 1000 k
            init_seed = cfg.seed + 1000 * k
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(init_seed)
                member = PunziNetwork(len(feats), cfg.hidden_layers, cfg.activation, mean, std)
            gen = torch.Generator().manual_seed(init_seed)
            t1 = time.perf_counter()
            rec_bce = _bce_phase(member, train_s, val_s, cfg, gen, bar)
            t2 = time.perf_counter()
            rec_punzi = _punzi_phase(member, train_s, val_s, cfg, luminosity_fb, bar)
            t3 = time.perf_counter()
            member.eval()
            if k == 0:  # the record's loss curves and timings are those of the first member
                first = (rec_bce, rec_punzi, t1, t2, t3)
            members.append(member)
            member_records.append(
                {
                    "init_seed": init_seed,
                    "punzi_best_val": float(min(rec_punzi.get("punzi_val") or [math.nan])),
                    "seconds": t3 - t1,
                }
            )
    rec_bce, rec_punzi, t1, t2, t3 = first
    net: PunziNetwork | PunziEnsemble = members[0] if len(members) == 1 else PunziEnsemble(members)
    net.eval()
    model = TrainedPunziNet(net, feats, cfg.model_copy(deep=True), versions=package_versions())
    record: dict[str, Any] = {
        **prep.info,
        "luminosity_fb": float(luminosity_fb),
        "resolution_gev2": np.asarray(res(prep.masses**2), dtype=np.float64).tolist(),
        **rec_bce,
        **rec_punzi,
        "seconds_prepare": t_prep,
        "seconds_bce": t2 - t1,
        "seconds_punzi": t3 - t2,
        "seconds_per_punzi_epoch": (t3 - t2) / max(1, len(rec_punzi["punzi_train"])),
        "ensemble": member_records,
    }
    t4 = time.perf_counter()
    report = _test_report(prep, net, cfg, luminosity_fb, cut)
    record.update(report)
    record["seconds_report"] = time.perf_counter() - t4
    model.record = record
    return model


def _test_report(
    prep: _Prepared,
    net: PunziNetwork | PunziEnsemble,
    cfg: PunziNetConfig,
    luminosity_fb: float,
    cut: float,
) -> dict[str, Any]:
    """Figure of merit with the hard cut on the independent test events, and the cut scan.

    Test masses: their whole signal samples (never used in training) with the test background.
    Training masses: their whole signal samples (partly trained on; labelled) with the same
    test background. Each row also carries the training split's background in its window, for
    the over-training ratio (fraction of background kept, training / test).
    """

    def out(part: _Part) -> np.ndarray:
        return _outputs(net, torch.from_numpy(part.x.astype(np.float32))).numpy().astype(np.float64)

    sig = [(p.m2, p.w, out(p)) for p in prep.signal_all]
    bt, btr = prep.background_test, prep.background_train
    kw: dict[str, Any] = {
        "luminosity_fb": luminosity_fb,
        "a": cfg.a,
        "b": cfg.b,
        "refined_constant": cfg.refined_constant,
    }
    rows = _fom_rows(
        prep.masses,
        prep.low,
        prep.high,
        sig,
        (bt.m2, bt.w, out(bt)),
        cut=cut,
        training_background=(btr.m2, btr.w, out(btr)),
        samples=["train mass" if t else "test mass" for t in prep.is_train_mass],
        **kw,
    )
    test = np.flatnonzero(~prep.is_train_mass)
    scan = _cut_scan(
        prep.masses[test],
        prep.low[test],
        prep.high[test],
        [sig[i] for i in test],
        (bt.m2, bt.w, out(bt)),
        SCAN_CUTS,
        **kw,
    )
    return {
        "fom_cut": float(cut),
        "fom_split": "test",
        "fom": [r.to_dict() for r in rows],
        "cut_scan": scan,
    }


def _cut_scan(
    masses: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    signal: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    background: tuple[np.ndarray, np.ndarray, np.ndarray],
    cuts: Sequence[float],
    *,
    luminosity_fb: float,
    a: float,
    b: float,
    refined_constant: bool,
) -> dict[str, Any]:
    """Per window: efficiency, background and sigma_min for each hard output cut."""
    bm2, bw, bout = background
    rows = []
    for i, (m2, w, y) in enumerate(signal):
        sin = (m2 > low[i]) & (m2 < high[i])
        bin_ = (bm2 > low[i]) & (bm2 < high[i])
        eps = np.array([float(w[sin & (y > c)].sum()) for c in cuts])
        bkg = np.array([float(bw[bin_ & (bout > c)].sum()) * luminosity_fb for c in cuts])
        with np.errstate(divide="ignore"):
            smin = sigma_min(
                eps, bkg, luminosity_fb=luminosity_fb, a=a, b=b, refined_constant=refined_constant
            )
        rows.append(
            {
                "mass_gev": float(masses[i]),
                "efficiency": eps.tolist(),
                "background": bkg.tolist(),
                "sigma_min_fb": np.asarray(smin, dtype=np.float64).tolist(),
            }
        )
    return {"cuts": [float(c) for c in cuts], "rows": rows}


# ---------------------------------------------------------------------------------------------
# hard-cut figure of merit (for reporting)


@dataclass(frozen=True)
class FomRow:
    """Punzi figure of merit in one mass window, without and with the network cut.

    Efficiencies are relative to all generated signal events of the mass; backgrounds are
    expected events at the luminosity; sigma_min in fb. ``background_train`` and
    ``background_train_cut`` are the same window's background estimated from the training
    split (``nan`` where not measured), for the over-training ratio; ``sample`` says whether
    the mass was a training or a test hypothesis ("" where not applicable).
    """

    mass_gev: float
    window_low_gev2: float
    window_high_gev2: float
    efficiency: float
    background: float
    sigma_min_fb: float
    efficiency_cut: float
    background_cut: float
    sigma_min_cut_fb: float
    background_train: float = math.nan
    background_train_cut: float = math.nan
    sample: str = ""

    @property
    def network_efficiency(self) -> float:
        """Signal efficiency of the network cut alone (within the window)."""
        return self.efficiency_cut / self.efficiency if self.efficiency > 0 else math.nan

    @property
    def gain(self) -> float:
        """Sensitivity gain of the cut: sigma_min without / with it."""
        return self.sigma_min_fb / self.sigma_min_cut_fb if self.sigma_min_cut_fb > 0 else 0.0

    @property
    def overtraining_ratio(self) -> float:
        """Fraction of the window's background kept by the cut, training split / test split.

        A network that generalises gives 1 within the statistical error; well below 1 it
        rejects the events it was trained on better than independent ones (over-training).
        """
        if not (self.background_train > 0 and self.background > 0 and self.background_cut > 0):
            return math.nan
        kept_train = self.background_train_cut / self.background_train
        return kept_train / (self.background_cut / self.background)

    def to_dict(self) -> dict[str, float | str]:
        """The row as plain values (with network efficiency, gain and over-training ratio)."""
        d: dict[str, float | str] = {}
        for k in self.__dataclass_fields__:
            v = getattr(self, k)
            d[k] = v if isinstance(v, str) else float(v)
        d["network_efficiency"] = float(self.network_efficiency)
        d["gain"] = float(self.gain)
        d["overtraining_ratio"] = float(self.overtraining_ratio)
        return d


@dataclass
class FomTable:
    """Per-window Punzi figure of merit with and without the network cut."""

    rows: list[FomRow]
    cut: float
    luminosity_fb: float
    note: str = ""

    def to_csv(self) -> str:
        """CSV text, one line per mass window."""
        buf = io.StringIO()
        dicts = [r.to_dict() for r in self.rows]
        writer = csv.DictWriter(buf, fieldnames=list(dicts[0]) if dicts else ["mass_gev"])
        writer.writeheader()
        writer.writerows(dicts)
        return buf.getvalue()

    def to_markdown(self) -> str:
        """A Markdown table for reports."""
        lines = [
            f"Punzi figure of merit at L = {self.luminosity_fb:g} fb^-1, "
            f"network cut > {self.cut:g}",
            "",
        ]
        if self.note:
            lines += [self.note, ""]
        lines += [
            "| M (GeV) | mass | window M^2 (GeV^2) | eps | B | sigma_min (fb) | eps cut | B cut "
            "| sigma_min cut (fb) | net eff. | gain | B kept train/test |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in self.rows:
            lines.append(
                f"| {r.mass_gev:.4g} | {r.sample or '-'} "
                f"| [{r.window_low_gev2:.3f}, {r.window_high_gev2:.3f}] "
                f"| {r.efficiency:.4g} | {r.background:.4g} | {r.sigma_min_fb:.4g} "
                f"| {r.efficiency_cut:.4g} | {r.background_cut:.4g} | {r.sigma_min_cut_fb:.4g} "
                f"| {r.network_efficiency:.3f} | {r.gain:.3g} "
                f"| {_fmt_ratio(r.overtraining_ratio)} |"
            )
        return "\n".join(lines) + "\n"


def _fmt_ratio(x: float) -> str:
    return f"{x:.2f}" if math.isfinite(x) else "-"


TEST_NOTE = (
    "Measured on the test part: test masses (every other simulated mass) with their whole "
    "signal samples, never used in training; training masses (labelled) with theirs, partly "
    "trained on. Background: the test events, weights divided by the test fraction (an honest "
    "estimate of an independent sample of that size). Last column: fraction of background "
    "kept, training split / test split (over-training if well below 1)."
)


def _fom_rows(
    masses: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    signal: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    background: tuple[np.ndarray, np.ndarray, np.ndarray],
    *,
    cut: float,
    luminosity_fb: float,
    a: float,
    b: float,
    refined_constant: bool,
    training_background: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    samples: Sequence[str] | None = None,
) -> list[FomRow]:
    """signal[i] = (m2, eff_weight = w/W_i, output); background = (m2, weight fb, output)."""
    kw = {"luminosity_fb": luminosity_fb, "a": a, "b": b, "refined_constant": refined_constant}

    def window_sum(part: tuple[np.ndarray, ...], i: int) -> tuple[float, float]:
        m2, w, y = part
        inside = (m2 > low[i]) & (m2 < high[i])
        return float(w[inside].sum()), float(w[inside & (y > cut)].sum())

    rows = []
    for i, sig in enumerate(signal):
        eps0, eps1 = window_sum(sig, i)
        b0, b1 = (v * luminosity_fb for v in window_sum(background, i))
        t0, t1 = math.nan, math.nan
        if training_background is not None:
            t0, t1 = (v * luminosity_fb for v in window_sum(training_background, i))
        with np.errstate(divide="ignore"):
            s0 = float(sigma_min(np.float64(eps0), np.float64(b0), **kw))
            s1 = float(sigma_min(np.float64(eps1), np.float64(b1), **kw))
        rows.append(
            FomRow(
                float(masses[i]),
                float(low[i]),
                float(high[i]),
                eps0,
                b0,
                s0,
                eps1,
                b1,
                s1,
                t0,
                t1,
                "" if samples is None else samples[i],
            )
        )
    return rows


def punzi_fom(
    signals: Sequence[SignalSample] | Mapping[float, tuple[Any, float]],
    background: Any,
    *,
    luminosity_fb: float,
    model: TrainedPunziNet | None = None,
    config: PunziNetConfig | None = None,
    resolution: Resolution | Any = default_resolution,
    cut: float | None = None,
) -> FomTable:
    """Per mass window, the Punzi figure of merit with a hard network cut and without it.

    This is the non-differentiable figure of merit the network approximates: in the window
    ``|M_recoil^2 - M^2| < N sigma(M^2)``, eps = (summed weight of the signal events of that
    mass passing) / (summed weight of all generated events of that mass), B = L x (summed
    weight of the background passing), and :func:`sigma_min`. The sensitivity gain of the
    network is ``sigma_min without / with the cut`` (PRL 130, 231801: "a sensitivity gain
    between 5 and 15, depending on the mass").

    Parameters
    ----------
    signals, background
        As for :func:`train` (independent events for an unbiased figure).
    luminosity_fb
        Luminosity, fb^-1.
    model
        The network; ``None`` (or events already carrying a ``punzinet`` column) uses the
        column ``punzinet`` of the events.
    config
        Supplies a, b, the window half-width and the default cut (default: the model's
        configuration, else :class:`~zprime.config.PunziNetConfig`).
    resolution
        sigma(M^2), GeV^2 (callable or object with ``sigma``).
    cut
        Network output cut (default :data:`PRL_OUTPUT_CUT`, 0.5 as in the PRL; the pipeline passes
        ``selection.punzinet_min``).
    """
    cfg = config or (model.config if model is not None else PunziNetConfig())
    c = PRL_OUTPUT_CUT if cut is None else float(cut)
    samples = _as_signal_samples(signals)
    masses = np.array([s.mass_gev for s in samples])
    low, high = _window_bounds(masses, _resolution_callable(resolution), cfg.window_sigmas)

    def _output(events: Any, where: str) -> np.ndarray:
        if model is not None:
            return predict(model, events)
        return _column(events, OUTPUT_COLUMN, where)

    sig = []
    for s in samples:
        where = f"punzinet signal M = {s.mass_gev:g} GeV"
        _, m2, w = _extract(s.events, (), where)
        sig.append((m2, w / s.total_weight, _output(s.events, where)))
    _, bm2, bw = _extract(background, (), "punzinet background")
    bkg = (bm2, bw, _output(background, "punzinet background"))
    rows = _fom_rows(
        masses,
        low,
        high,
        sig,
        bkg,
        cut=c,
        luminosity_fb=luminosity_fb,
        a=cfg.a,
        b=cfg.b,
        refined_constant=cfg.refined_constant,
    )
    return FomTable(rows, c, luminosity_fb)


# ---------------------------------------------------------------------------------------------
# files


def read_training_files(
    signal_paths: Sequence[str | Path],
    background_paths: Sequence[str | Path],
    features: Sequence[str] = FEATURES,
) -> tuple[list[SignalSample], dict[str, np.ndarray]]:
    """Read selected signal and background Parquet files for :func:`train`.

    Each signal file is one mass: its metadata (written by ``zprime generate signal`` and kept by
    the detector simulation and the selection) give ``mass_gev`` and ``sigma_fb``, the summed
    weight of all generated events (the efficiency denominator). The background files are
    concatenated.

    Raises
    ------
    InputError
        A missing or corrupt file, a missing column, or a signal file without its metadata.
    """
    from zprime.io.events import read_events, read_metadata

    cols = [*features, MASS2_COLUMN, WEIGHT_COLUMN]

    def _read(path: str | Path) -> dict[str, np.ndarray]:
        ev = read_events(path, cols)
        return {c: np.asarray(ak.to_numpy(ev[c]), dtype=np.float64) for c in cols}

    signals = []
    for path in signal_paths:
        meta = read_metadata(path)
        for key in ("mass_gev", "sigma_fb"):
            if not isinstance(meta.get(key), int | float):
                raise InputError(f"{path}: metadata lack '{key}' (not a zprime signal sample)")
        signals.append(SignalSample(float(meta["mass_gev"]), _read(path), float(meta["sigma_fb"])))
    if not background_paths:
        raise InputError("punzinet: no background files given")
    parts = [_read(p) for p in background_paths]
    background = {c: np.concatenate([p[c] for p in parts]) for c in cols}
    return signals, background


# ---------------------------------------------------------------------------------------------
# saving and loading


def save(model: TrainedPunziNet, path: str | Path) -> Path:
    """Write the network, input scaling, features, configuration, record and versions.

    The file (``torch.save`` of plain types and tensors, readable with ``weights_only=True``) is
    written atomically.
    """
    net = model.network
    payload = {
        "format": FILE_FORMAT,
        "format_version": FILE_VERSION,
        "features": list(model.features),
        "hidden_layers": [int(h) for h in model.config.hidden_layers],
        "activation": model.config.activation,
        "members": len(net.members) if isinstance(net, PunziEnsemble) else 1,
        "state_dict": {k: v.detach().clone() for k, v in net.state_dict().items()},
        "config": model.config.model_dump(mode="json"),
        "record": model.record,
        "versions": dict(model.versions),
    }
    target = Path(path)
    with atomic_path(target) as tmp:
        torch.save(payload, tmp)
    return target


def load(path: str | Path, features: Sequence[str] | None = None) -> TrainedPunziNet:
    """Read a network written by :func:`save`.

    Parameters
    ----------
    path
        The file.
    features
        If given, the input columns the caller will provide; they must equal the trained ones.

    Raises
    ------
    InputError
        Missing, corrupt or foreign file, or a feature mismatch (one line naming the file).
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: file not found")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds (pickle, zip, runtime) for a bad file
        raise InputError(f"{p}: not a readable Punzi-net file ({err.__class__.__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FILE_FORMAT:
        raise InputError(f"{p}: not a zprime Punzi-net file")
    if payload.get("format_version") != FILE_VERSION:
        raise InputError(
            f"{p}: Punzi-net file version {payload.get('format_version')} "
            f"(this zprime reads {FILE_VERSION})"
        )
    stored = tuple(payload.get("features", ()))
    if features is not None and tuple(features) != stored:
        raise InputError(f"{p}: network trained on features {list(stored)}, got {list(features)}")
    try:
        cfg = PunziNetConfig.model_validate(payload["config"])
        n_members = int(payload.get("members", 1))
        parts = [
            PunziNetwork(len(stored), payload["hidden_layers"], payload["activation"])
            for _ in range(n_members)
        ]
        net: PunziNetwork | PunziEnsemble = parts[0] if n_members == 1 else PunziEnsemble(parts)
        net.load_state_dict(payload["state_dict"])
    except Exception as err:  # a damaged or inconsistent payload
        raise InputError(f"{p}: inconsistent Punzi-net file ({err.__class__.__name__})") from None
    net.eval()
    return TrainedPunziNet(
        net, stored, cfg, record=payload.get("record", {}), versions=payload.get("versions", {})
    )


# ---------------------------------------------------------------------------------------------
# synthetic toy (tests and benchmarks; not a physics model)


def toy_samples(
    rng: np.random.Generator,
    masses_gev: Sequence[float],
    n_signal: int,
    n_background: int,
    *,
    resolution: Resolution = default_resolution,
    signal_xsec_fb: float = 10.0,
    generated_per_mass: int | None = None,
    background_xsec_fb: tuple[float, float] = (2.0e3, 5.0e3),
) -> tuple[list[SignalSample], dict[str, np.ndarray]]:
    """A synthetic problem with the shape of the real one (for tests and benchmarks only).

    Signal of each mass: M_recoil^2 Gaussian around M^2 with ``resolution``; the four features
    from a correlated Gaussian centred away from the backgrounds. Background: two components,
    flat in M_recoil^2 over [-1, 81] GeV^2, one "tau-like" (large transverse momenta, shape
    overlapping the signal in three features) and one "mu-mu-like" (small dimuon p_T).
    ``n_signal`` events per mass are the *selected* ones out of ``generated_per_mass``
    (default ``2 n_signal``), each carrying ``signal_xsec_fb / generated_per_mass``.
    """
    gen = generated_per_mass or 2 * n_signal
    signals = []
    for m in masses_gev:
        m2 = m * m + float(resolution(np.float64(m * m))) * rng.standard_normal(n_signal)
        x = np.column_stack(
            [
                rng.normal(0.30, 0.08, n_signal),
                rng.normal(0.55, 0.15, n_signal),
                rng.normal(0.45 + 0.02 * m, 0.2, n_signal),
                rng.normal(1.2, 0.35, n_signal),
            ]
        )
        ev = {f: np.ascontiguousarray(x[:, i]) for i, f in enumerate(FEATURES)}
        ev[MASS2_COLUMN] = m2
        ev[WEIGHT_COLUMN] = np.full(n_signal, signal_xsec_fb / gen)
        signals.append(SignalSample(float(m), ev, signal_xsec_fb))
    n_tau = n_background // 2
    n_mu = n_background - n_tau
    tau = np.column_stack(
        [
            rng.normal(0.45, 0.15, n_tau),
            rng.normal(0.80, 0.25, n_tau),
            rng.normal(0.30, 0.25, n_tau),
            rng.normal(1.3, 0.5, n_tau),
        ]
    )
    mu = np.column_stack(
        [
            rng.normal(0.30, 0.10, n_mu),
            rng.normal(0.55, 0.20, n_mu),
            rng.normal(0.50, 0.25, n_mu),
            np.abs(rng.normal(0.0, 0.6, n_mu)),
        ]
    )
    x = np.concatenate([tau, mu])
    bkg = {f: np.ascontiguousarray(x[:, i]) for i, f in enumerate(FEATURES)}
    bkg[MASS2_COLUMN] = rng.uniform(-1.0, 81.0, n_background)
    bkg[WEIGHT_COLUMN] = np.concatenate(
        [np.full(n_tau, background_xsec_fb[0] / n_tau), np.full(n_mu, background_xsec_fb[1] / n_mu)]
    )
    return signals, bkg
