"""X -> tau+ tau- decays with the tau spin correlations of a vector, scalar or pseudoscalar
parent, and full signal events e+e- -> mu+ mu- X, X -> tau+ tau- (Belle II, PRL 131, 121802
(2023), arXiv:2306.12294).

Decay and spin correlations
---------------------------
A narrow X of four-momentum ``q`` decays isotropically in its rest frame (the frame reached from
the lab by a rotation-free boost) into ``tau-(k1) tau+(k2)``. The taus are decayed by
:func:`zprime.generators.tau_decays.decay_pair` with the spin-correlation matrix ``R`` of the
parent, expressed, as in :mod:`zprime.generators.tautau`, on one set of axes for both taus
(``z'`` along the tau- in the X rest frame, :func:`~zprime.generators.tau_decays.helicity_axes`),
each tau rest frame reached from the X rest frame by a rotation-free boost; the decay products
are then boosted to the lab with ``q``. The decay density is
``sum_ab R_ab s-_a s+_b / R_00`` (``s_0 = 1``, ``s+-`` the rest-frame spin vectors):

- scalar, ``L = -y S taubar tau`` (CP even, 3P0): ``R = diag(1, +1, +1, -1)``;
- pseudoscalar, ``L = -i y a taubar gamma5 tau`` (CP odd, 1S0, the spin singlet):
  ``R = diag(1, -1, -1, -1)``;
- vector with a vector coupling (the L_mu - L_tau Z'), *unpolarised* (averaged over the three
  Z' polarisations): ``R = diag(1, C_T, C_T, C_L)`` with ``C_T = (1 - beta^2)/(3 - beta^2)`` and
  ``C_L = (1 + beta^2)/(3 - beta^2)``, beta the tau velocity in the X frame (beta -> 0: the
  triplet average delta_ij / 3; beta -> 1: helicity conservation, C_L = 1, C_T = 0).

The spin-0 matrices are the textbook H/A -> tau tau correlations, independent of beta: the
transverse correlations have opposite signs for the CP-even and the CP-odd state, which is what
the decay-plane (acoplanarity) angle measures (J. H. Kuhn, F. Wagner, Nucl. Phys. B236 (1984)
16; M. Kramer, J. H. Kuhn, M. L. Stong, P. M. Zerwas, Z. Phys. C64 (1994) 21; S. Berge,
W. Bernreuther, J. Ziethe, PRL 100 (2008) 171605). The vector matrix is the angular average of
Tsai's gamma* -> tau tau matrix (:func:`zprime.generators.tautau.correlation_matrix`). All three
are checked against explicit Dirac spinors in ``tests/generators/test_x_decays.py``, with the
spinor conventions of the tau-pair tests (the generator's conventions).

Approximation (vector): the Z' polarisation produced in e+e- -> mu+ mu- Z' is not tracked; the
Z' decay is isotropic in its rest frame with the polarisation-averaged correlations. For a
spin-0 X this is exact (a narrow spin-0 state carries no polarisation).

Events
------
:func:`write_mumu_x_tautau` draws unweighted e+e- -> mu+ mu- X events with
:class:`zprime.generators.signal.SignalGenerator` (exact tree-level matrix element, ISR, lab
boost), decays X -> tau+ tau- (B = 1: the branching fraction is the model's business) and the
taus into all the modes of :mod:`zprime.generators.tau_decays` with their PDG branching
fractions, and writes the muons, the ISR photons and the tau decay products (neutrinos only with
``keep_neutrinos``; pi0 already as photons) in the generator-level event schema, the format the
tau-pair background uses, so :mod:`zprime.detector.simulation` simulates them alike.

Units: GeV; cross sections in fb.
"""

from __future__ import annotations

import contextlib
import functools
import math
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, NamedTuple, cast

import awkward as ak
import numpy as np
from numpy.typing import NDArray

from zprime._util import chunk_rng, provenance
from zprime.errors import ConfigError
from zprime.generators import tau_decays as td
from zprime.generators.signal import (
    ALPHA_DEFAULT,
    SPINS,
    SignalGenerator,
    Spin,
)
from zprime.io.events import EventWriter, make_particles
from zprime.parallel import default_workers, local_pool, map_tasks
from zprime.physics.constants import M_TAU, SQRT_S
from zprime.physics.dirac import minkowski_dot

__all__ = [
    "ALL_MODE_CODES",
    "XTauTauDecays",
    "correlation_matrix",
    "decay_x_to_tautau",
    "event_particles",
    "mumu_x_tautau_file_name",
    "sample_modes",
    "write_mumu_x_tautau",
]

F64 = NDArray[np.float64]

ALL_MODE_CODES: NDArray[np.int64] = np.array(
    [td.MODE_CODES[m.name] for m in td.MODES], dtype=np.int64
)
"""Codes of all tau decay modes of :mod:`zprime.generators.tau_decays`."""

_BR = np.array([m.br for m in td.MODES])
_CDF = np.cumsum(_BR / _BR.sum())
_K_ALL = td.max_multiplicity(ALL_MODE_CODES.tolist())
_NEUTRINOS = (12, 14, 16)
_PDG_MU = 13
_PDG_PHOTON = 22


def _check_spin(spin: Any) -> Spin:
    if spin not in SPINS:
        raise ConfigError(f"spin must be one of {', '.join(SPINS)}, got {spin!r}")
    return cast(Spin, spin)


# --------------------------------------------------------------------------- spin correlations
def correlation_matrix(spin: Spin, beta: F64) -> F64:
    """Spin-correlation matrix R (n, 4, 4) of X -> tau- tau+ (first index tau-).

    Parameters
    ----------
    spin
        ``"vector"`` (unpolarised, vector coupling), ``"scalar"`` or ``"pseudoscalar"``.
    beta
        (n,) tau velocity in the X rest frame.

    Notes
    -----
    Common axes for both taus, ``z'`` along the tau- (module docstring); ``R_00 = 1``.
    """
    b2 = np.asarray(beta, dtype=np.float64) ** 2
    r = np.zeros((*b2.shape, 4, 4))
    r[..., 0, 0] = 1.0
    sp = _check_spin(spin)
    if sp in ("scalar", "pseudoscalar"):
        transverse = 1.0 if sp == "scalar" else -1.0
        r[..., 1, 1] = transverse
        r[..., 2, 2] = transverse
        r[..., 3, 3] = -1.0
    else:
        ct = (1.0 - b2) / (3.0 - b2)
        r[..., 1, 1] = ct
        r[..., 2, 2] = ct
        r[..., 3, 3] = (1.0 + b2) / (3.0 - b2)
    return r


# --------------------------------------------------------------------------- decays
def _boost_from_rest(p4: F64, parent: F64) -> F64:
    """Boost (n, k, 4) momenta from the rest frame of ``parent`` (n, 4) (rotation-free) to the
    frame in which it has four-momentum ``parent``."""
    m = np.sqrt(np.maximum(minkowski_dot(parent, parent), 1e-300))[:, None]
    e0 = parent[:, None, 0]
    pv = parent[:, None, 1:]
    pdotv = np.einsum("nki,nki->nk", p4[..., 1:], np.broadcast_to(pv, p4[..., 1:].shape))
    out = np.empty_like(p4)
    out[..., 0] = (p4[..., 0] * e0 + pdotv) / m
    coef = pdotv / (m * (e0 + m)) + p4[..., 0] / m
    out[..., 1:] = p4[..., 1:] + coef[..., None] * pv
    return out


def sample_modes(n: int, rng: np.random.Generator) -> NDArray[np.int64]:
    """(n,) tau decay-mode codes drawn with the PDG branching fractions of
    :data:`zprime.generators.tau_decays.MODES` (they sum to 1)."""
    idx = np.minimum(np.searchsorted(_CDF, rng.random(n), side="right"), len(_CDF) - 1)
    return ALL_MODE_CODES[idx]


class XTauTauDecays(NamedTuple):
    """Output of :func:`decay_x_to_tautau` (frame of the input X momenta)."""

    pdg: NDArray[np.int64]
    """(n, 2k) PDG codes: the tau- products, then the tau+ products; 0 marks padding (and
    dropped neutrinos)."""
    p4: F64
    """(n, 2k, 4) four-momenta (E, px, py, pz), GeV."""
    tau_minus: F64
    """(n, 4) tau- four-momentum."""
    tau_plus: F64
    """(n, 4) tau+ four-momentum."""
    tau_minus_mode: NDArray[np.int64]
    """(n,) decay-mode code of the tau- (:data:`zprime.generators.tau_decays.MODE_CODES`)."""
    tau_plus_mode: NDArray[np.int64]
    """(n,) decay-mode code of the tau+."""
    cos_theta: F64
    """(n,) cosine of the tau- polar angle in the X rest frame (axes parallel to the input
    frame's)."""


def decay_x_to_tautau(
    x_p4: F64,
    spin: Spin,
    rng: np.random.Generator,
    *,
    codes_minus: NDArray[np.integer] | None = None,
    codes_plus: NDArray[np.integer] | None = None,
    keep_neutrinos: bool = False,
    spin_correlations: bool = True,
) -> XTauTauDecays:
    """Decay X -> tau- tau+ and the taus, with the spin correlations of the parent.

    Parameters
    ----------
    x_p4
        (n, 4) X four-momenta in any frame (the lab); the X mass is ``sqrt(x_p4^2)`` per event
        and must exceed 2 m_tau.
    spin
        ``"vector"``, ``"scalar"`` or ``"pseudoscalar"`` (:func:`correlation_matrix`).
    rng
        Random generator.
    codes_minus, codes_plus
        (n,) forced decay-mode codes (default: drawn with the branching fractions,
        :func:`sample_modes`).
    keep_neutrinos
        Keep the neutrinos (default: their slots get pdg 0, as in the tau-pair background).
    spin_correlations
        False: independent, unpolarised tau decays (for comparisons).

    Returns
    -------
    XTauTauDecays
        Momenta in the frame of ``x_p4``.

    Raises
    ------
    ConfigError
        For an unknown spin or an X lighter than 2 m_tau.
    """
    sp = _check_spin(spin)
    x_p4 = np.asarray(x_p4, dtype=np.float64)
    n = x_p4.shape[0]
    mx = np.sqrt(np.maximum(minkowski_dot(x_p4, x_p4), 0.0))
    if np.any(mx <= 2.0 * M_TAU):
        raise ConfigError(
            f"X -> tau tau needs an X mass above 2 m_tau = {2 * M_TAU:.5f} GeV, "
            f"got {float(mx.min()):.5f} GeV"
        )
    cm = sample_modes(n, rng) if codes_minus is None else np.asarray(codes_minus, dtype=np.int64)
    cp = sample_modes(n, rng) if codes_plus is None else np.asarray(codes_plus, dtype=np.int64)
    # isotropic tau- direction in the X rest frame
    c = 2.0 * rng.random(n) - 1.0
    phi = 2.0 * math.pi * rng.random(n)
    st = np.sqrt(np.maximum(1.0 - c * c, 0.0))
    d = np.stack([st * np.cos(phi), st * np.sin(phi), c], axis=1)
    e = 0.5 * mx
    p = np.sqrt(np.maximum(e * e - M_TAU * M_TAU, 0.0))
    tm = np.concatenate([e[:, None], p[:, None] * d], axis=1)
    tp = np.concatenate([e[:, None], -p[:, None] * d], axis=1)
    axes = td.helicity_axes(d)
    r = correlation_matrix(sp, p / e) if spin_correlations else None
    dm, dp, pm, pp, _ = td.decay_pair(tm, tp, axes, axes, r, cm, cp, rng, k=_K_ALL)
    prods = _boost_from_rest(np.concatenate([pm, pp], axis=1), x_p4)
    taus = _boost_from_rest(np.stack([tm, tp], axis=1), x_p4)
    pdg = np.concatenate([dm.pdg, dp.pdg], axis=1)
    if not keep_neutrinos:
        pdg = np.where(np.isin(np.abs(pdg), _NEUTRINOS), 0, pdg)
    return XTauTauDecays(pdg, prods, taus[:, 0], taus[:, 1], cm, cp, c)


# --------------------------------------------------------------------------- events
def mumu_x_tautau_file_name(mass: float, spin: Spin, mass_hi: float | None = None) -> str:
    """File name of a sample: ``signal_tautau_{spin}_M{mass:.4f}.parquet`` (a mass range:
    ``..._M{mass:.4f}-{mass_hi:.4f}.parquet``)."""
    tail = "" if mass_hi is None else f"-{mass_hi:.4f}"
    return f"signal_tautau_{spin}_M{mass:.4f}{tail}.parquet"


def event_particles(p4: F64, keep: NDArray[np.bool_], decays: XTauTauDecays) -> ak.Array:
    """The particles of signal events in the event schema: the muons and ISR photons of
    :meth:`zprime.generators.signal.SignalGenerator.lab_momenta` (``p4``, ``keep``; X dropped)
    followed by the products of ``decays`` (:func:`decay_x_to_tautau` of X = ``p4[:, 2]``)."""
    n = p4.shape[0]
    pdg_prod = np.array([_PDG_MU, -_PDG_MU] + [_PDG_PHOTON] * (p4.shape[1] - 3), dtype=np.int64)
    pdg_prod = np.broadcast_to(pdg_prod, (n, len(pdg_prod)))
    keep_prod = np.delete(keep, 2, axis=1)
    pdg = np.concatenate([np.where(keep_prod, pdg_prod, 0), decays.pdg], axis=1)
    mom = np.concatenate([np.delete(p4, 2, axis=1), decays.p4], axis=1)
    nz = pdg != 0
    return make_particles(pdg[nz], mom[nz], counts=nz.sum(axis=1))


def _chunk(
    gen: SignalGenerator, weight_fb: float, keep_neutrinos: bool, task: tuple[int, int, int, int]
) -> tuple[ak.Array, int]:
    """One chunk of events: (events, trials of the unweighting)."""
    index, n, first, seed = task
    rng = chunk_rng(seed, 2, index)
    p4, keep, acc = gen.lab_momenta(n, rng)
    dec = decay_x_to_tautau(p4[:, 2], gen.spin, rng, keep_neutrinos=keep_neutrinos)
    particles = event_particles(p4, keep, dec)
    events = ak.zip(
        {
            "event": np.arange(first, first + n, dtype=np.int64),
            "weight": np.full(n, weight_fb),
            "particles": particles,
            "mass": acc.mz,
            "sqrt_s_hat": acc.sqrt_s_hat,
            "tau_minus_mode": dec.tau_minus_mode.astype(np.int32),
            "tau_plus_mode": dec.tau_plus_mode.astype(np.int32),
        },
        depth_limit=1,
    )
    return ak.to_packed(events), acc.n_trials


def write_mumu_x_tautau(
    mass: float,
    spin: Spin,
    n: int,
    out_dir: str | Path,
    *,
    seed: int,
    isr: bool = True,
    g: float = 1.0,
    alpha: float = ALPHA_DEFAULT,
    sqrt_s: float = SQRT_S,
    rel_precision: float = 0.005,
    keep_neutrinos: bool = False,
    chunk_size: int = 100_000,
    executor: Executor | str | None = None,
    workers: int | None = None,
    n_pilot: int = 400_000,
    mass_hi: float | None = None,
) -> Path:
    """Generate ``n`` events e+e- -> mu+ mu- X, X -> tau+ tau- and write them to
    ``out_dir/`` :func:`mumu_x_tautau_file_name`.

    Parameters
    ----------
    mass
        X mass in GeV, in (2 m_tau, sqrt_s - 2 m_mu); narrow X.
    mass_hi
        With it, a continuum of X masses on ``[mass, mass_hi]`` (flat before the cross-section
        weighting; :class:`zprime.generators.signal.SignalGenerator`); each event's ``mass``
        column holds its own. For training classifiers that must not learn discrete masses.
    spin
        ``"vector"`` (Z', ``g`` = g'), ``"scalar"`` or ``"pseudoscalar"`` (``g`` = y).
    n
        Number of events.
    out_dir
        Output directory.
    seed
        Seed: the vegas adaptation uses ``(seed, 1)``, chunk ``i`` ``chunk_rng(seed, 2, i)``
        (the file does not depend on the number of workers).
    isr, g, alpha, sqrt_s, rel_precision
        As in :func:`zprime.generators.signal.cross_section`.
    keep_neutrinos
        Write the neutrinos (default: not, like the tau-pair background).
    chunk_size, executor, workers
        Chunking and parallelism (:func:`zprime.parallel.map_tasks`).
    n_pilot
        Points of the pilot run that finds the unweighting maximum.

    Returns
    -------
    Path
        The file written (atomically). Every event has ``weight = sigma_fb / n``, ``sigma_fb``
        (metadata) the cross section of e+e- -> mu+ mu- X at coupling ``g`` times
        B(X -> tau tau) = 1. Columns: ``event``, ``weight``, ``particles`` (mu-, mu+, ISR
        photons, tau decay products), ``mass``, ``sqrt_s_hat``, ``tau_minus_mode``,
        ``tau_plus_mode``.
    """
    sp = _check_spin(spin)
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or int(n) <= 0:
        raise ConfigError(f"n must be a positive integer, got {n!r}")
    if isinstance(chunk_size, bool) or int(chunk_size) <= 0:
        raise ConfigError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    n, chunk_size = int(n), int(chunk_size)
    if not float(mass) > 2.0 * M_TAU:
        raise ConfigError(f"X mass {mass!r} GeV below the tau-pair threshold {2 * M_TAU:.5f} GeV")
    setup_seed = int(np.random.SeedSequence([int(seed), 1]).generate_state(1)[0])
    gen = SignalGenerator(
        mass,
        isr=isr,
        alpha=alpha,
        sqrt_s=sqrt_s,
        g=g,
        rel_precision=rel_precision,
        seed=setup_seed,
        n_pilot=n_pilot,
        spin=sp,
        mass_hi=mass_hi,
    )
    sizes = [min(chunk_size, n - i) for i in range(0, n, chunk_size)]
    tasks = [(i, k, i * chunk_size, int(seed)) for i, k in enumerate(sizes)]
    fn = functools.partial(_chunk, gen, gen.sigma_fb / n, bool(keep_neutrinos))
    n_workers = workers or default_workers()
    if len(tasks) == 1 or (executor is None and n_workers == 1):
        executor = "serial"
    own_pool = executor is None
    group = max(1, 2 * n_workers) if executor != "serial" else 1
    path = Path(out_dir) / mumu_x_tautau_file_name(gen.mass, sp, gen.mass_hi)
    meta = {
        **gen.describe(),
        "sample": "signal_tautau",
        "spin": sp,
        "process": f"e+e- -> mu+ mu- X, X -> tau+ tau- ({sp} X)",
        "decay": "x_decays: isotropic X -> tau tau, B = 1, tau spin correlations of the parent"
        + (" (vector: unpolarised Z' approximation)" if sp == "vector" else ""),
        "keep_neutrinos": bool(keep_neutrinos),
        "tau_mode_codes": dict(td.MODE_CODES),
        "n_events": n,
        "seed": int(seed),
        "chunk_size": chunk_size,
    }
    n_trials = 0
    with contextlib.ExitStack() as stack, EventWriter(path, metadata=meta) as writer:
        if own_pool:
            executor = stack.enter_context(local_pool(n_workers))
        for start in range(0, len(tasks), group):
            results = map_tasks(fn, tasks[start : start + group], executor=executor, progress=False)
            for events, trials in results:
                writer.write(events)
                n_trials += trials
        writer.update_metadata(
            n_trials=n_trials,
            unweighting_efficiency=n / n_trials,
            provenance=provenance(),
        )
    return path
