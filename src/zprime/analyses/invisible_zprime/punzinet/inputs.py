"""Inputs of the Punzi-net: column names, the signal resolution, signal samples, column
extraction and the synthetic toy problem.

Owns the column names (:data:`FEATURES`, ``m_recoil2``, ``weight``, the output column
``punzinet``) and the PRL's output cut, the fallback M_recoil^2 resolution
(:func:`default_resolution`) and the conversion of a resolution model to a function of M^2,
:class:`SignalSample` and the checks that turn events (awkward arrays or mappings of columns)
into float64 numpy arrays, and :func:`toy_samples`, the synthetic problem of the tests and
benchmarks. Nothing here needs torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from zprime.errors import ConfigError, InputError

FEATURES: tuple[str, ...] = ("pt_thrust_cm", "pt_hi_lo_cm", "pl_hi_lo_cm", "pt_mumu_cm")
"""The four c.m.-frame inputs of the PRL (names of the reconstructed schema)."""
MASS2_COLUMN = "m_recoil2"
WEIGHT_COLUMN = "weight"
OUTPUT_COLUMN = "punzinet"
PRL_OUTPUT_CUT = 0.5
"""The PRL's cut on the network output, used by the training-time figure-of-merit report."""


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
# signal samples and columns


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


def _resolution_callable(resolution: Any) -> Resolution:
    """``resolution`` as a function of M^2: a callable, or an object with a ``sigma`` method
    (:class:`zprime.analyses.invisible_zprime.binning.ResolutionModel`)."""
    if hasattr(resolution, "sigma") and callable(resolution.sigma):
        return resolution.sigma  # type: ignore[no-any-return]
    if callable(resolution):
        return resolution  # type: ignore[no-any-return]
    raise ConfigError(f"punzinet: resolution must be callable, got {type(resolution).__name__}")


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
