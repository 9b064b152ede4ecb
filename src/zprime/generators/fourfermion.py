"""e+e- -> four leptons at Belle II with the exact tree-level matrix element (``eemumu``, ``eeee``).

This module owns the phase-space generation and the sample's chunk function of the
four-fermion final states ``eemumu``, ``eeee``, ``eetautau`` and ``mumutautau``; the matrix
element is :mod:`zprime.generators.fourfermion_me` (every tree-level QED graph, fermion masses
kept). No initial-state radiation is generated (like AAFH, whose samples the PRL used): the
two-photon process's own photons give its recoil. Tau pairs decay through
:mod:`zprime.generators.tau_decays`, unpolarised (their spin correlations are not modelled).

Phase space: three channels
---------------------------
Each channel is an analytic map of ``x`` in [0, 1]^7 (plus a uniform global azimuth) followed
by its own ``vegas`` map; a point's weight is ``dsigma/dPhi / sum_c alpha_c rho_c``, with
``rho_c`` the density of channel c over the invariant phase space at that channel's coordinates
of the point (the analytic maps are inverted exactly, :func:`_inverse_t`, :func:`_inverse_s`;
:meth:`vegas.AdaptiveMap.invmap`), so the weights are exact whatever the maps learn.

- **Two-photon** (two channels, trained where the e- resp. the e+ has the larger p_T): the
  graphs peak where both beam leptons scatter at tiny angles, ``1/Q1^2 1/Q2^2`` with ``Q^2``
  down to ``m_e^2 v^2/(1 - v)`` ~ 1e-11 GeV^2, and lose little energy (``dv/v``). The energy
  losses ``v3``, ``v4`` through ``tau = v3 v4`` log-uniform in ``[W_min^2/s, (1 - m/E)^2]``
  (``W^2 <= s v3 v4``) and the pair rapidity ``eta = ln(v3/v4)/2``; ``Q1^2``, ``Q2^2``
  log-uniform between their exact limits (or ``q2_max_gev2``), ``1 - cos(theta)`` from them
  without rounding loss; the azimuths; the f- direction in the pair frame about the e- beam
  direction through its rapidity ``u`` there (flat in ``atanh(beta cos)``: the f-exchange
  peaks), with ``ya = eta + u`` and ``yb = eta - u`` the vegas variables, so that "both
  fermions central" is nearly a box.
- **Annihilation** (trained where a scattered lepton is more than 30 deg from its beam): the
  two pairs' masses, log-uniform in m^2 from threshold, the direction of the first pair and
  the two decays. It is the only map of ``mumutautau``; ``eeee`` does not use it.

The target the maps adapt to is ``|M|^2 x filter x r`` with ``r`` as in
:mod:`zprime.generators.mumu`: 1 where the event can pass the preselection at truth level
(:func:`_passable`), ``detected_suppression`` where it cannot, ``far_suppression`` beyond every
fit window. The matrix element is evaluated only for points that pass the filter.

e e e e: the labelled phase space is integrated with the antisymmetrised matrix element (36
graphs) and the symmetry factor 1/4, restricted to the *canonical* labelling: ``p3`` is the e-
with the smaller momentum transfer from the e- beam, ``p4`` the e+ with the smaller one from the
e+ beam (each unlabelled event has exactly one, so the 4 labellings cancel the 1/4). ``W`` is
then the mass of the other pair (p5, p6).

Weights and unweighting
-----------------------
Each point weighs ``dsigma/g`` (fb, summing to the cross section within the filter); as in
:mod:`zprime.generators.mumu` the sample driver's target weight ``1/(luminosity_factor L)``
sets a threshold toward which the events are partially unweighted (per region: ``w_t / r``).

Length: one process class: the phase-space channels, their multichannel weights and the chunk
function share the mappings.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import awkward as ak
import numpy as np
import vegas
from numpy.typing import NDArray

from zprime.errors import ConfigError, InputError
from zprime.generators import fourfermion_me as me
from zprime.generators import tau_decays as td
from zprime.generators.chunk import ChunkResult
from zprime.generators.filters import filter_mask
from zprime.generators.mumu import (
    _BARREL_DEG,
    _E_UNDETECTED_GEV,
    _E_VETO_GEV,
    _ECL_GAPS_DEG,
    _ECL_RANGE_DEG,
    _M2_SPLIT_GEV2,
    _VETO_CONE_DEG,
    _basis,
    _boost,
    _freeze,
    _thaw,
)
from zprime.io.events import make_particles
from zprime.physics.constants import ALPHA_0, GEV2_TO_FB, M_ELECTRON, P_BEAMS_LAB, SQRT_S
from zprime.physics.kinematics import cm_to_lab

__all__ = [
    "DEFAULT_OPTIONS",
    "OPTION_DOCS",
    "SUPPORTED",
    "chunk",
    "cross_section",
    "describe",
    "generate",
    "resolve_options",
]

Array = NDArray[np.float64]

SUPPORTED: tuple[str, ...] = ("eemumu", "eeee", "eetautau", "mumutautau")
"""Final states the generator makes (:data:`fourfermion_me.FINAL_STATES`)."""

_PDG = {"e": 11, "mu": 13, "tau": 15}

_OPTIONS: dict[str, tuple[Any, str]] = {
    "final_state": ("eemumu", f"one of {', '.join(SUPPORTED)}"),
    "w_min_gev": (
        0.5,
        "minimum invariant mass W of the produced pair (p5, p6), GeV; above 2 m_f, below "
        "sqrt(s) - 2 m_e",
    ),
    "map": (
        None,
        "phase-space map: 'two-photon' (the beam leptons scatter; e e mu mu, e e e e, e e tau "
        "tau) or 'annihilation' (two pairs from the annihilation; mu mu tau tau); null: the "
        "final state's own",
    ),
    "q2_max_gev2": (
        None,
        "maximum Q^2 = -(p_beam - p_scattered)^2 of each beam lepton, GeV^2 (null: none, the "
        "exact matrix element has no cut-off; a value reproduces an equivalent-photon sample's "
        "Q2max for validation)",
    ),
    "detected_suppression": (
        0.1,
        "r of the target density where the event fails the preselection's veto and recoil "
        "cuts at truth level (0 < r <= 1; those events weigh 1/r times the target weight)",
    ),
    "far_suppression": (
        0.01,
        "r of the target density where the truth M_recoil^2 is above 76 GeV^2, beyond every "
        "fit window (0 < r <= 1; those events weigh 1/r times the target weight)",
    ),
    "target_weight_fb": (
        None,
        "target weight of the partial unweighting, fb (set by the sample driver as "
        "1/(luminosity_factor L)); null: no unweighting",
    ),
}

OPTION_DOCS: dict[str, str] = {key: doc for key, (_, doc) in _OPTIONS.items()}
"""Documentation of every generator option."""

DEFAULT_OPTIONS: dict[str, Any] = {key: value for key, (value, _) in _OPTIONS.items()}
"""Default generator options."""

_S = SQRT_S**2
_E_BEAM = 0.5 * SQRT_S
_DIM = 7
_N_EXTRA = 1
_TRAIN_SEED = 20230607
_TRAIN_ITERATIONS = 20
_TRAIN_POINTS = 80_000
_INTEGRATION_POINTS = 400_000
_N_INCREMENTS = 100
_BATCH = 100_000
# the CDC acceptance and the transverse momentum above which a charged particle is taken as a
# found track by the truth-level emulation (detector: 17-150 deg; tracks are found down to
# ~0.05 GeV, docs/detector.md)
_CDC_DEG = (17.0, 150.0)
# range of the two rapidity-like variables ya = eta + u, yb = eta - u (|eta| < 3.6, |u| < 4.6
# at sqrt(s) = 10.58 GeV and W > 0.2 GeV)
_Y_RANGE = 8.5
_TRACK_PT_GEV = 0.05
# the largest M_recoil^2 a fit window reaches: M_Z' <= 8.5 GeV (PRL), 72.25 GeV^2 plus half a
# window (10 resolution units of 0.06 GeV^2): 73 GeV^2; 3 GeV^2 of margin (50 resolution
# units). Above it the events are sampled at far_suppression (spectra only).
_M2_MAX_GEV2 = 76.0
# the selection's cuts on the two tracks and their recoil
# (zprime.analyses.invisible_zprime.selection, PRL 130 231801),
# each with a margin of many resolution units: track p_T > 0.4 GeV (0.35), both tracks in the
# two-track trigger's 37-120 deg (36-121), azimuthal opening > 30 deg in 2020 (25), recoil
# p_T(c.m.) > 0.5 GeV (0.45), recoil angle < 123 deg above 4 GeV^2 (125)
_PAIR_PT_GEV = 0.35
_PAIR_THETA_DEG = (36.0, 121.0)
_PAIR_DPHI_DEG = 25.0
_RECOIL_PT_GEV = 0.45
_RECOIL_THETA_MAX_DEG = 125.0


def _where(settings: Mapping[str, Any] | None, key: str) -> str:
    name = (settings or {}).get("name", "eemumu")
    return f"backgrounds.samples.{name}.options.{key}"


def resolve_options(settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The generator options: :data:`DEFAULT_OPTIONS` updated by ``settings['options']``.

    Raises
    ------
    ConfigError
        One line naming ``backgrounds.samples.<name>.options.<key>`` for an unknown option, an
        unsupported final state, or a value of the wrong kind or outside its domain.
    """
    given = dict((settings or {}).get("options") or {})
    opts = dict(DEFAULT_OPTIONS)
    for key, value in given.items():
        where = _where(settings, key)
        if key not in opts:
            raise ConfigError(f"{where}: unknown option (known: {', '.join(opts)})")
        if key == "map":
            if value not in (None, "two-photon", "annihilation"):
                raise ConfigError(
                    f"{where} = {value!r} must be 'two-photon', 'annihilation' or null"
                )
            opts[key] = value
            continue
        if key == "final_state":
            if value not in SUPPORTED:
                raise ConfigError(
                    f"{where} = {value!r} is not supported (known: {', '.join(SUPPORTED)})"
                )
            opts[key] = value
            continue
        if value is None and key in ("target_weight_fb", "q2_max_gev2"):
            opts[key] = None
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise ConfigError(f"{where} must be a finite number, got {value!r}")
        opts[key] = float(value)
    if opts["target_weight_fb"] is None and (settings or {}).get("target_weight_fb") is not None:
        opts["target_weight_fb"] = float(settings["target_weight_fb"])  # type: ignore[index]

    def fail(key: str, msg: str) -> None:
        raise ConfigError(f"{_where(settings, key)} = {opts[key]} {msg}")

    f1, f2 = me.FINAL_STATES[opts["final_state"]]
    m_f = me.MASSES[f2]
    w_hi = SQRT_S - 2.0 * me.MASSES[f1]
    kind = _map_of(opts)
    if kind == "two-photon" and f1 != "e":
        fail("map", f"'two-photon' needs scattered e+e- (final state {opts['final_state']})")
    if kind == "annihilation" and opts["final_state"] == "eeee":
        fail("map", "'annihilation' does not treat the identical fermions of e e e e")
    if kind == "annihilation" and opts["q2_max_gev2"] is not None:
        fail("q2_max_gev2", "applies to the 'two-photon' map only")
    if not 2.0 * m_f < opts["w_min_gev"] < w_hi:
        fail("w_min_gev", f"must lie in ({2.0 * m_f:.4f}, {w_hi:.3f}) GeV (2 m_f2, E_cm - 2 m_f1)")
    q2 = opts["q2_max_gev2"]
    q2_floor = _q2_limits(np.array([0.5]))[0][0]
    if q2 is not None and not q2_floor < q2 <= _S:
        fail("q2_max_gev2", f"must lie in ({q2_floor:.3g}, {_S:.1f}] GeV^2 or be null")
    for key in ("detected_suppression", "far_suppression"):
        if not 0.0 < opts[key] <= 1.0:
            fail(key, "must lie in (0, 1]")
    if opts["target_weight_fb"] is not None and not opts["target_weight_fb"] > 0.0:
        fail("target_weight_fb", "must be positive")
    return opts


def check_filter(settings: Mapping[str, Any]) -> None:
    """Refuse a filter looser than the physical phase space allows to be meaningful.

    The generator's importance sampling is trained with the filter; without one (or with one
    switched off) the sample spends its time on the 19 nb of untagged two-photon events that
    no selection keeps, so a filter with two tracks is required.

    Raises
    ------
    ConfigError
        One line naming ``backgrounds.samples.<name>.filter``.
    """
    name = settings.get("name", "eemumu")
    filt = settings.get("filter")
    if filt is None or not filt.get("enabled", True) or int(filt.get("min_tracks", 0)) < 2:
        raise ConfigError(
            f"backgrounds.samples.{name}.filter must be enabled with min_tracks >= 2 for "
            "zprime.generators.fourfermion (its sampling is built for events with two tracks)"
        )


# --------------------------------------------------------------------------------------------
# phase space


def _q2_limits(e3: Array, m: float = M_ELECTRON) -> tuple[Array, Array]:
    """Kinematic limits of Q^2 = -(p_beam - p)^2 for a scattered lepton of energy e3 (c.m.)."""
    pb = math.sqrt(_E_BEAM**2 - m * m)
    p3 = np.sqrt(np.maximum(e3 * e3 - m * m, 0.0))
    x = (_E_BEAM**2 + e3 * e3 - m * m) / (_E_BEAM * e3 + pb * p3) - 1.0
    return 2.0 * m * m * x, 2.0 * (_E_BEAM * e3 + pb * p3) - 2.0 * m * m


class _Point(NamedTuple):
    """A batch of phase-space points (c.m. frame) and their cross-section density."""

    f: Array
    """dsigma / dx of the analytic map, fb (0 outside the phase space or the cuts)"""
    p: Array
    """(n, 6, 4) c.m. momenta p1..p6"""
    p4_lab: Array
    """(n, 4, 4) lab momenta of p3..p6"""
    q2: Array
    """(n, 2) Q^2 of the e- and e+ lines"""
    w: Array
    """(n,) mass of the (p5, p6) pair"""
    tag: NDArray[np.int8]
    """the channel whose vegas map is trained on the point (:func:`_train_channel`)"""
    kin: me.Kinematics
    """the momenta in the form of the matrix element"""
    jac_inv: Array
    """d(phase space)/dx: the invariant measure prod d^3p/(2E) delta^4 per unit x (0 outside)"""
    x: Array
    """(n, 7) the map's coordinates of the point"""


def _phase_space(x: Array, u: Array, opts: Mapping[str, Any]) -> _Point:
    """Map ``x`` (n, 7) in [0, 1] (after vegas) and ``u`` (n, 1) to events and dsigma/dx,
    through the option ``map``'s phase-space map."""
    if _map_of(opts) == "annihilation":
        return _phase_space_s(x, u, opts)
    return _phase_space_t(x, u, opts)


def _map_of(opts: Mapping[str, Any]) -> str:
    if opts.get("map") is not None:
        return str(opts["map"])
    return "annihilation" if opts["final_state"] == "mumutautau" else "two-photon"


def _two_body(w: Array, m: float, axis: Array, c: Array, phi: Array) -> tuple[Array, Array]:
    """Momenta (n, 2, 4) of a decay of mass w into two masses m in its rest frame (first
    particle at polar angle acos(c) about ``axis`` (n, 3), azimuth phi) and beta."""
    beta = np.sqrt(np.maximum(1.0 - 4.0 * m * m / (w * w), 0.0))
    e1, e2 = _basis(axis)
    s = np.sqrt(np.maximum(1.0 - c * c, 0.0))
    d = (s * np.cos(phi))[:, None] * e1 + (s * np.sin(phi))[:, None] * e2 + c[:, None] * axis
    out = np.zeros((w.size, 2, 4))
    out[:, :, 0] = 0.5 * w[:, None]
    out[:, 0, 1:] = (0.5 * w * beta)[:, None] * d
    out[:, 1, 1:] = -(0.5 * w * beta)[:, None] * d
    return out, beta


def _phase_space_s(x: Array, u: Array, opts: Mapping[str, Any]) -> _Point:
    """The annihilation map: e+e- -> (f1 f1bar) (f2 f2bar) as two pairs of masses m34, m56
    (each log-uniform in m^2 from threshold: the 1/m^2 of the photons that make them), the
    direction of the first pair in the c.m. frame (cos theta, azimuth) and the two decays
    (cos, azimuth about the pair's direction). The measure is
    dm34^2 dm56^2 (p/(4 sqrt(s))) dOmega (beta34/8) dOmega34 (beta56/8) dOmega56."""
    n = x.shape[0]
    fs = str(opts["final_state"])
    flav = me.FINAL_STATES[fs]
    m1 = me.MASSES[flav[0]]
    m2 = me.MASSES[flav[1]]
    two_pi = 2.0 * math.pi
    ok = np.ones(n, dtype=bool)
    lo1 = 4.0 * m1 * m1 * (1.0 + 1e-9)
    hi1 = (SQRT_S - 2.0 * m2) ** 2
    l1 = math.log(hi1 / lo1)
    s34 = lo1 * np.exp(l1 * x[:, 0])
    lo2 = max(4.0 * m2 * m2 * (1.0 + 1e-9), float(opts["w_min_gev"]) ** 2)
    hi2 = (SQRT_S - np.sqrt(s34)) ** 2
    ok &= hi2 > lo2
    l2 = np.log(np.maximum(hi2 / lo2, 1.0))
    s56 = lo2 * np.exp(l2 * x[:, 1])
    jac = s34 * l1 * s56 * l2
    m34, m56 = np.sqrt(s34), np.sqrt(s56)
    lam = (_S - (m34 + m56) ** 2) * (_S - (m34 - m56) ** 2)
    ok &= lam > 0.0
    pp = np.sqrt(np.maximum(lam, 0.0)) / (2.0 * SQRT_S)
    c = 2.0 * x[:, 2] - 1.0
    sn = np.sqrt(np.maximum(1.0 - c * c, 0.0))
    phi = two_pi * u[:, 0]
    d = np.stack([sn * np.cos(phi), sn * np.sin(phi), c], axis=-1)
    jac = jac * 2.0 * two_pi * pp / (4.0 * SQRT_S)
    e34 = np.sqrt(pp * pp + s34)
    e56 = np.sqrt(pp * pp + s56)
    dec34, b34 = _two_body(m34, m1, d, 2.0 * x[:, 3] - 1.0, two_pi * x[:, 4])
    dec56, b56 = _two_body(m56, m2, -d, 2.0 * x[:, 5] - 1.0, two_pi * x[:, 6])
    jac = jac * (2.0 * two_pi * b34 / 8.0) * (2.0 * two_pi * b56 / 8.0)
    p = np.zeros((n, 6, 4))
    pb = math.sqrt(_E_BEAM**2 - M_ELECTRON**2)
    p[:, 0] = (_E_BEAM, 0.0, 0.0, pb)
    p[:, 1] = (_E_BEAM, 0.0, 0.0, -pb)
    p[:, 2:4] = _boost(dec34, (pp / e34)[:, None] * d)
    p[:, 4:6] = _boost(dec56, -(pp / e56)[:, None] * d)
    kin = me.kinematics_from_momenta(p, fs)
    jac_inv = np.where(ok, jac, 0.0)
    q2 = np.stack([-kin.t13, -kin.t24], axis=-1)
    return _Point(
        _COUPLING_FREE * jac_inv,
        p,
        cm_to_lab(p[:, 2:]),
        q2,
        m56,
        _train_channel(p),
        kin,
        jac_inv,
        x,
    )


def _phase_space_t(x: Array, u: Array, opts: Mapping[str, Any]) -> _Point:
    """The two-photon map (module docstring)."""
    n = x.shape[0]
    fs = str(opts["final_state"])
    flav = me.FINAL_STATES[fs]
    m = me.MASSES[flav[0]]
    mf = me.MASSES[flav[1]]
    w_min = float(opts["w_min_gev"])
    q2_cap = opts["q2_max_gev2"]
    pb = math.sqrt(_E_BEAM**2 - m * m)
    two_pi = 2.0 * math.pi
    ok = np.ones(n, dtype=bool)

    # v3 v4 = tau (>= W^2/s: W^2 <= s v3 v4) log-uniform, eta = ln(v3/v4)/2 uniform: the
    # pair's mass and rapidity, on which the filter's acceptance nearly factorises
    v_hi = 1.0 - m / _E_BEAM
    tau_lo = w_min * w_min / _S
    lt = math.log(v_hi * v_hi / tau_lo)
    tau = tau_lo * np.exp(lt * x[:, 0])
    eta_max = 0.5 * np.log(v_hi * v_hi / tau)
    # eta and the f- "rapidity" u in the pair frame (below) come from ya = eta + u and
    # yb = eta - u, each uniform in [-_Y_RANGE, _Y_RANGE]: the filter's acceptance (both
    # fermions central) is then nearly a box in (ya, yb), which vegas's separable map follows
    ya = _Y_RANGE * (2.0 * x[:, 2] - 1.0)
    yb = _Y_RANGE * (2.0 * x[:, 5] - 1.0)
    eta = 0.5 * (ya + yb)
    u_star = 0.5 * (ya - yb)
    ok &= np.abs(eta) < eta_max
    v3 = np.sqrt(tau) * np.exp(eta)
    v4 = np.sqrt(tau) * np.exp(-eta)
    jac = tau * lt * 0.5 * (2.0 * _Y_RANGE) ** 2  # dv3 dv4 = dtau deta; deta du = dya dyb / 2
    e3 = _E_BEAM * (1.0 - v3)
    e4 = _E_BEAM * (1.0 - v4)
    p3a = np.sqrt(np.maximum(e3 * e3 - m * m, 0.0))
    p4a = np.sqrt(np.maximum(e4 * e4 - m * m, 0.0))
    q2 = np.empty((n, 2))
    omc = np.empty((n, 2))
    for i, (e, pa, col) in enumerate(((e3, p3a, 1), (e4, p4a, 3))):
        lo, hi = _q2_limits(e, m)
        if q2_cap is not None:
            ok &= lo < q2_cap
            hi = np.minimum(hi, q2_cap)
        lq = np.log(np.maximum(hi / lo, 1.0))
        q = lo * np.exp(lq * x[:, col])
        jac = jac * q * lq
        q2[:, i] = q
        omc[:, i] = np.clip((q - lo) / (2.0 * pb * np.maximum(pa, 1e-300)), 0.0, 2.0)
    phi3 = two_pi * u[:, 0]
    phi4 = phi3 + two_pi * x[:, 4]
    jac = jac * two_pi * two_pi * _E_BEAM * _E_BEAM

    p = np.zeros((n, 6, 4))
    p[:, 0] = (_E_BEAM, 0.0, 0.0, pb)
    p[:, 1] = (_E_BEAM, 0.0, 0.0, -pb)
    sin3 = np.sqrt(omc[:, 0] * (2.0 - omc[:, 0]))
    sin4 = np.sqrt(omc[:, 1] * (2.0 - omc[:, 1]))
    p[:, 2, 0] = e3
    p[:, 2, 1] = p3a * sin3 * np.cos(phi3)
    p[:, 2, 2] = p3a * sin3 * np.sin(phi3)
    p[:, 2, 3] = p3a * (1.0 - omc[:, 0])
    p[:, 3, 0] = e4
    p[:, 3, 1] = p4a * sin4 * np.cos(phi4)
    p[:, 3, 2] = p4a * sin4 * np.sin(phi4)
    p[:, 3, 3] = -p4a * (1.0 - omc[:, 1])

    big_q = -p[:, 2] - p[:, 3]
    big_q[:, 0] += SQRT_S
    w2 = big_q[:, 0] ** 2 - np.sum(big_q[:, 1:] ** 2, axis=-1)
    ok &= w2 > max(w_min * w_min, 4.0 * mf * mf * (1.0 + 1e-9))
    w2 = np.where(ok, w2, 4.0 * w_min * w_min)
    w = np.sqrt(w2)
    beta = np.sqrt(1.0 - 4.0 * mf * mf / w2)
    bq = np.where(ok[:, None], big_q[:, 1:] / big_q[:, :1], 0.0)
    # axis: the photon from the e- side, q1 = p1 - p3, in the pair rest frame
    q1 = p[:, 0][:, None, :].copy()
    axis = _boost(q1, -bq)[:, 0, 1:]
    axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
    e1, e2 = _basis(axis)
    at = np.arctanh(beta)
    ok &= np.abs(u_star) < at
    c = np.tanh(np.clip(u_star, -at, at)) / beta
    jac = jac * (1.0 - beta * beta * c * c) / beta
    s = np.sqrt(np.maximum(1.0 - c * c, 0.0))
    phis = two_pi * x[:, 6]
    jac = jac * two_pi
    dirn = (s * np.cos(phis))[:, None] * e1 + (s * np.sin(phis))[:, None] * e2 + c[:, None] * axis
    pstar = 0.5 * w * beta
    rest = np.zeros((n, 2, 4))
    rest[:, :, 0] = 0.5 * w[:, None]
    rest[:, 0, 1:] = pstar[:, None] * dirn
    rest[:, 1, 1:] = -pstar[:, None] * dirn
    p[:, 4:] = _boost(rest, bq)

    cos_half = np.empty((n, 6))
    sin_half = np.empty((n, 6))
    cos_half[:, 0], sin_half[:, 0] = 1.0, 0.0
    cos_half[:, 1], sin_half[:, 1] = 0.0, 1.0
    cos_half[:, 2] = np.sqrt(1.0 - 0.5 * omc[:, 0])
    sin_half[:, 2] = np.sqrt(0.5 * omc[:, 0])
    cos_half[:, 3] = np.sqrt(0.5 * omc[:, 1])  # theta = pi - theta', theta' from -z
    sin_half[:, 3] = np.sqrt(1.0 - 0.5 * omc[:, 1])
    ch, sh = me._half_angles(p[:, 4:])
    cos_half[:, 4:], sin_half[:, 4:] = ch, sh
    masses = np.array([me.MASSES[f] for f in me._flavours(fs)])
    kin = me.Kinematics(p, cos_half, sin_half, -q2[:, 0], -q2[:, 1], masses)

    if fs == "eeee":
        # canonical labelling: p3 (p4) has the smaller momentum transfer from its beam
        q15 = 2.0 * (_E_BEAM * p[:, 4, 0] - pb * p[:, 4, 3]) - 2.0 * m * m
        q26 = 2.0 * (_E_BEAM * p[:, 5, 0] + pb * p[:, 5, 3]) - 2.0 * m * m
        ok &= (q2[:, 0] <= q15) & (q2[:, 1] <= q26)
    jac_inv = np.where(ok, jac * beta / (8.0 * (4.0 * pb) ** 2), 0.0)
    # everything but |M|^2 (filled by _with_me where needed)
    return _Point(
        _COUPLING_FREE * jac_inv,
        p,
        cm_to_lab(p[:, 2:]),
        q2,
        w,
        _train_channel(p),
        kin,
        jac_inv,
        x,
    )


_PB = math.sqrt(_E_BEAM**2 - M_ELECTRON**2)
_COUPLING_FREE = (2.0 * math.pi) ** -8 / (4.0 * _PB * SQRT_S) * GEV2_TO_FB
"""(2 pi)^-8 / flux, in fb GeV^2: dsigma = this x |M|^2 x d(invariant phase space)"""
# a scattered lepton farther than this from its own beam (c.m.) makes the point "annihilation
# like": the annihilation channel's map is trained on those points, the two-photon maps on the
# rest (the weights are exact whatever the split; it only shapes the maps)
_S_LIKE_DEG = 30.0
# the smallest fraction of the points a channel gets (so that its map is sampled at all)
_ALPHA_MIN = 0.02


def _train_channel(p: Array) -> NDArray[np.int8]:
    """0: two-photon-like, e- tagged (larger p_T); 1: two-photon-like, e+ tagged; 2 and 3: the
    same for annihilation-like points (a scattered lepton farther than 30 deg from its beam)."""
    cos3 = p[:, 2, 3] / np.maximum(np.linalg.norm(p[:, 2, 1:], axis=-1), 1e-300)
    cos4 = -p[:, 3, 3] / np.maximum(np.linalg.norm(p[:, 3, 1:], axis=-1), 1e-300)
    lim = math.cos(math.radians(_S_LIKE_DEG))
    s_like = (cos3 < lim) | (cos4 < lim)
    pt3 = np.hypot(p[:, 2, 1], p[:, 2, 2])
    pt4 = np.hypot(p[:, 3, 1], p[:, 3, 2])
    return (np.where(pt3 >= pt4, 0, 1) + 2 * s_like).astype(np.int8)


def _inverse_s(p: Array, opts: Mapping[str, Any]) -> tuple[Array, Array]:
    """The annihilation map's x (n, 7) of c.m. momenta p (n, 6, 4), and d(phase space)/dx
    there (0 where the map cannot reach the point)."""
    n = p.shape[0]
    flav = me.FINAL_STATES[str(opts["final_state"])]
    m1, m2 = me.MASSES[flav[0]], me.MASSES[flav[1]]
    two_pi = 2.0 * math.pi
    q34 = p[:, 2] + p[:, 3]
    q56 = p[:, 4] + p[:, 5]
    s34 = np.maximum(_sq4(q34), 1e-300)
    s56 = np.maximum(_sq4(q56), 1e-300)
    lo1 = 4.0 * m1 * m1 * (1.0 + 1e-9)
    hi1 = (SQRT_S - 2.0 * m2) ** 2
    l1 = math.log(hi1 / lo1)
    lo2 = max(4.0 * m2 * m2 * (1.0 + 1e-9), float(opts["w_min_gev"]) ** 2)
    hi2 = (SQRT_S - np.sqrt(s34)) ** 2
    l2 = np.log(np.maximum(hi2 / lo2, 1.0 + 1e-15))
    x = np.empty((n, 7))
    x[:, 0] = np.log(s34 / lo1) / l1
    x[:, 1] = np.log(s56 / lo2) / l2
    pp = np.linalg.norm(q34[:, 1:], axis=-1)
    d = q34[:, 1:] / np.maximum(pp, 1e-300)[:, None]
    x[:, 2] = 0.5 * (d[:, 2] + 1.0)
    jac = s34 * l1 * s56 * l2 * 2.0 * two_pi * pp / (4.0 * SQRT_S)
    for k, (leg, axis, m) in enumerate(((2, d, m1), (4, -d, m2))):
        q = q34 if leg == 2 else q56
        rest = _boost(p[:, leg][:, None, :], -q[:, 1:] / q[:, :1])[:, 0, 1:]
        rest /= np.linalg.norm(rest, axis=-1, keepdims=True)
        e1, e2 = _basis(axis)
        x[:, 3 + 2 * k] = 0.5 * (np.sum(rest * axis, axis=-1) + 1.0)
        phi = np.arctan2(np.sum(rest * e2, axis=-1), np.sum(rest * e1, axis=-1))
        x[:, 4 + 2 * k] = np.mod(phi / two_pi, 1.0)
        mm = s34 if leg == 2 else s56
        beta = np.sqrt(np.maximum(1.0 - 4.0 * m * m / mm, 0.0))
        jac = jac * 2.0 * two_pi * beta / 8.0
    ok = np.all((x >= 0.0) & (x <= 1.0), axis=1) & (hi2 > lo2)
    return np.clip(x, 0.0, 1.0), np.where(ok, jac, 0.0)


def _inverse_t(p: Array, opts: Mapping[str, Any]) -> tuple[Array, Array]:
    """The two-photon map's x (n, 7) of c.m. momenta p (n, 6, 4), and d(phase space)/dx there
    (0 where the map cannot reach the point). Used for points of the annihilation channel,
    whose scattered leptons are far from the beams: their Q^2 are computed from the momenta."""
    n = p.shape[0]
    flav = me.FINAL_STATES[str(opts["final_state"])]
    m, mf = me.MASSES[flav[0]], me.MASSES[flav[1]]
    w_min = float(opts["w_min_gev"])
    q2_cap = opts["q2_max_gev2"]
    two_pi = 2.0 * math.pi
    x = np.empty((n, 7))
    ok = np.ones(n, dtype=bool)
    v_hi = 1.0 - m / _E_BEAM
    tau_lo = w_min * w_min / _S
    lt = math.log(v_hi * v_hi / tau_lo)
    v3 = 1.0 - p[:, 2, 0] / _E_BEAM
    v4 = 1.0 - p[:, 3, 0] / _E_BEAM
    ok &= (v3 > 0.0) & (v4 > 0.0)
    v3 = np.maximum(v3, 1e-300)
    v4 = np.maximum(v4, 1e-300)
    tau = v3 * v4
    x[:, 0] = np.log(tau / tau_lo) / lt
    eta = 0.5 * np.log(v3 / v4)
    eta_max = 0.5 * np.log(np.maximum(v_hi * v_hi / tau, 1.0))
    ok &= np.abs(eta) < eta_max
    jac = tau * lt * 0.5 * (2.0 * _Y_RANGE) ** 2
    pb = math.sqrt(_E_BEAM**2 - m * m)
    for i, (leg, sign, col) in enumerate(((2, 1.0, 1), (3, -1.0, 3))):
        e = p[:, leg, 0]
        q = 2.0 * (_E_BEAM * e - sign * pb * p[:, leg, 3]) - 2.0 * m * m
        lo, hi = _q2_limits(e, m)
        if q2_cap is not None:
            hi = np.minimum(hi, q2_cap)
        lq = np.log(np.maximum(hi / lo, 1.0 + 1e-15))
        q = np.maximum(q, lo)
        x[:, col] = np.log(q / lo) / lq
        jac = jac * q * lq
        del i
    phi3 = np.arctan2(p[:, 2, 2], p[:, 2, 1])
    phi4 = np.arctan2(p[:, 3, 2], p[:, 3, 1])
    x[:, 4] = np.mod((phi4 - phi3) / two_pi, 1.0)
    jac = jac * two_pi * two_pi * _E_BEAM * _E_BEAM
    big_q = p[:, 4] + p[:, 5]
    w2 = _sq4(big_q)
    ok &= w2 > max(w_min * w_min, 4.0 * mf * mf)
    w2 = np.maximum(w2, 4.0 * mf * mf * (1.0 + 1e-9))
    beta = np.sqrt(1.0 - 4.0 * mf * mf / w2)
    bq = big_q[:, 1:] / big_q[:, :1]
    axis = _boost(p[:, 0][:, None, :].copy(), -bq)[:, 0, 1:]
    axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
    rest = _boost(p[:, 4][:, None, :], -bq)[:, 0, 1:]
    rest /= np.linalg.norm(rest, axis=-1, keepdims=True)
    c = np.clip(np.sum(rest * axis, axis=-1), -1.0, 1.0)
    u_star = np.arctanh(np.clip(beta * c, -1.0 + 1e-15, 1.0 - 1e-15))
    x[:, 2] = 0.5 * ((eta + u_star) / _Y_RANGE + 1.0)
    x[:, 5] = 0.5 * ((eta - u_star) / _Y_RANGE + 1.0)
    e1, e2 = _basis(axis)
    phis = np.arctan2(np.sum(rest * e2, axis=-1), np.sum(rest * e1, axis=-1))
    x[:, 6] = np.mod(phis / two_pi, 1.0)
    jac = jac * (1.0 - beta * beta * c * c) / beta * two_pi
    jac = jac * beta / (8.0 * (4.0 * pb) ** 2)
    ok &= np.all((x >= 0.0) & (x <= 1.0), axis=1)
    return np.clip(x, 0.0, 1.0), np.where(ok, jac, 0.0)


def _sq4(k: Array) -> Array:
    return k[:, 0] ** 2 - k[:, 1] ** 2 - k[:, 2] ** 2 - k[:, 3] ** 2


def _with_me(point: _Point, need: NDArray[np.bool_], fs: str) -> _Point:
    """Multiply f by |M|^2 where ``need`` (and f > 0); elsewhere f is set to 0.

    The matrix element is the expensive part: it is evaluated only for the points whose weight
    is used (those that pass the filter, in production).
    """
    idx = np.flatnonzero(need & (point.f > 0.0))
    f = np.zeros_like(point.f)
    if idx.size:
        k = point.kin
        sub = me.Kinematics(
            k.p[idx], k.cos_half[idx], k.sin_half[idx], k.t13[idx], k.t24[idx], k.masses
        )
        f[idx] = point.f[idx] * me.matrix_element_squared(sub, fs, ALPHA_0)
    return point._replace(f=f)


def _pdg_codes(fs: str) -> NDArray[np.int32]:
    f1, f2 = me.FINAL_STATES[fs]
    return np.array([_PDG[f1], -_PDG[f1], _PDG[f2], -_PDG[f2]], dtype=np.int32)


def _passable(p4_lab: Array) -> NDArray[np.int8]:
    """Region of each event (n, 4, 4) (p3..p6): 1 if it can pass the preselection at truth
    level, 0 if not, -1 if its M_recoil^2 is beyond anything the analysis uses.

    Mirrors :func:`zprime.generators.mumu._passes_veto` with the scattered beam leptons (p3,
    p4) as the extra objects and the produced pair (p5, p6) as the two tracks: a scattered
    lepton inside the CDC acceptance (17-150 deg) with p_T above 0.05 GeV is a track (the
    selection wants exactly two); inside the ECL (outside its gaps, above 0.1 GeV) it counts
    toward the 0.6 GeV veto sum and the 10 deg recoil cone; below
    M_recoil^2 = 3 GeV^2 the recoil against the pair points into 31-126 deg, above it at less
    than 125 deg; the pair's tracks and their recoil pass the selection's p_T, angle and trigger
    cuts with margins (constants above). Region -1: M_recoil^2 above 76 GeV^2 (beyond every
    fit window). It only steers the sampling density, never a weight.
    """
    th = np.degrees(np.arctan2(np.hypot(p4_lab[..., 1], p4_lab[..., 2]), p4_lab[..., 3]))
    pt = np.hypot(p4_lab[..., 1], p4_lab[..., 2])
    is_e = np.array([True, True, False, False])
    track = is_e[None, :] & (th > _CDC_DEG[0]) & (th < _CDC_DEG[1]) & (pt > _TRACK_PT_GEV)
    det = (th > _ECL_RANGE_DEG[0]) & (th < _ECL_RANGE_DEG[1]) & (p4_lab[..., 0] > _E_UNDETECTED_GEV)
    for lo, hi in _ECL_GAPS_DEG:
        det &= ~((th > lo) & (th < hi))
    det &= is_e[None, :]
    ok = ~np.any(track, axis=1)
    ok &= np.sum(np.where(det, p4_lab[..., 0], 0.0), axis=1) < _E_VETO_GEV
    muons = ~is_e[None, :]
    rec = np.asarray(P_BEAMS_LAB) - np.sum(np.where(muons[..., None], p4_lab, 0.0), axis=1)
    m2 = rec[:, 0] ** 2 - np.sum(rec[:, 1:] ** 2, axis=1)
    prec = np.linalg.norm(rec[:, 1:], axis=1)
    th_rec = np.degrees(np.arctan2(np.hypot(rec[:, 1], rec[:, 2]), rec[:, 3]))
    ok &= (m2 > _M2_SPLIT_GEV2) | ((th_rec > _BARREL_DEG[0]) & (th_rec < _BARREL_DEG[1]))
    ok &= (m2 < _M2_SPLIT_GEV2) | (th_rec < _RECOIL_THETA_MAX_DEG)
    ok &= np.hypot(rec[:, 1], rec[:, 2]) > _RECOIL_PT_GEV  # p_T is boost invariant along z
    ok &= np.all(pt[:, 2:] > _PAIR_PT_GEV, axis=1)
    ok &= np.all((th[:, 2:] > _PAIR_THETA_DEG[0]) & (th[:, 2:] < _PAIR_THETA_DEG[1]), axis=1)
    dphi = np.abs(
        np.angle(
            (p4_lab[:, 2, 1] + 1j * p4_lab[:, 2, 2]) * (p4_lab[:, 3, 1] - 1j * p4_lab[:, 3, 2])
        )
    )
    ok &= dphi > math.radians(_PAIR_DPHI_DEG)
    pg = np.linalg.norm(p4_lab[..., 1:], axis=-1)
    cos = np.sum(p4_lab[..., 1:] * rec[:, None, 1:], axis=-1) / np.maximum(
        pg * prec[:, None], 1e-12
    )
    near = det & (cos > math.cos(math.radians(_VETO_CONE_DEG)))
    ok &= ~np.any(near, axis=1)
    # beyond every fit window. (Events with a pair particle outside the tracker stay in region
    # 0: with a scattered lepton in the tracker they feed the e mu control sample.)
    return np.where(m2 >= _M2_MAX_GEV2, -1, ok.astype(np.int8)).astype(np.int8)


class _Sampled(NamedTuple):
    point: _Point
    weight: Array
    """f / g per point, fb"""
    passed: NDArray[np.bool_]
    region: NDArray[np.int8]
    pdg: NDArray[np.int64]
    """(n, k) final-state particles (0: padding): the scattered leptons, then the pair or
    the decay products of its taus"""
    p4: Array
    """(n, k, 4) their lab momenta"""


@functools.lru_cache(maxsize=1)
def _tau_mode_table() -> tuple[NDArray[np.int64], Array, int]:
    """Mode codes, cumulative branching fractions (PDG 2024, :mod:`tau_decays`) and the
    largest multiplicity."""
    brs = td.branching_fractions()
    codes = np.array([td.MODE_CODES[m] for m in brs], dtype=np.int64)
    cdf = np.cumsum(np.array(list(brs.values())))
    return codes, cdf / cdf[-1], td.max_multiplicity([int(c) for c in codes])


def _final_particles(
    point: _Point, fs: str, rng: np.random.Generator
) -> tuple[NDArray[np.int64], Array]:
    """Final-state particles in the lab: the four leptons, or for tau pairs the e+e- and the
    tau decay products (every mode by its branching fraction, unpolarised and independent:
    the spin correlations of these taus are not modelled; neutrinos are not written)."""
    n = point.f.shape[0]
    pdg4 = np.broadcast_to(_pdg_codes(fs).astype(np.int64), (n, 4))
    if me.FINAL_STATES[fs][1] != "tau":
        return np.ascontiguousarray(pdg4), point.p4_lab
    codes, cdf, k = _tau_mode_table()
    cm = codes[np.minimum(np.searchsorted(cdf, rng.random(n), "right"), codes.size - 1)]
    cp = codes[np.minimum(np.searchsorted(cdf, rng.random(n), "right"), codes.size - 1)]
    tm, tp = point.p4_lab[:, 2], point.p4_lab[:, 3]
    dm, dp, pm, pp, _ = td.decay_pair(
        tm,
        tp,
        td.helicity_axes(tm[:, 1:]),
        td.helicity_axes(tp[:, 1:]),
        None,
        cm,
        cp,
        rng,
        k=k,
    )
    pdg = np.concatenate([pdg4[:, :2], dm.pdg, dp.pdg], axis=1)
    pdg = np.where(np.isin(np.abs(pdg), (12, 14, 16)), 0, pdg)
    return pdg, np.concatenate([point.p4_lab[:, :2], pm, pp], axis=1)


def _target(
    point: _Point,
    fs: str,
    filt: Mapping[str, Any] | None,
    r: tuple[float, float],
    rng: np.random.Generator,
    *,
    everywhere: bool = False,
) -> tuple[_Point, Array, Any, Any, NDArray[np.int64], Array]:
    """The point with |M|^2 (where the filter passes, or ``everywhere``), the target density
    ``f filter r``, the filter mask, the regions and the final-state particles.

    The truth-level regions (:func:`_passable`) are those of the invisible-Z' selection: for
    tau pairs (whose tracks are decay products) every point is in region 1.
    """
    n = point.f.shape[0]
    pdg, p4 = _final_particles(point, fs, rng)
    passed = filter_mask(pdg, p4, filt) if filt is not None else np.ones(n, bool)
    if me.FINAL_STATES[fs][1] == "tau":
        region = np.ones(n, dtype=np.int8)
    else:
        region = _passable(point.p4_lab)
    point = _with_me(point, np.ones(n, bool) if everywhere else passed, fs)
    t = np.where(passed, point.f * _density_factor(region, r), 0.0)
    return point, t, passed, region, pdg, p4


def _density_factor(region: NDArray[np.int8], r: tuple[float, float]) -> Array:
    """1 in region 1, r[0] (detected_suppression) in 0, r[1] (far_suppression) in -1."""
    return np.where(region == 1, 1.0, np.where(region == 0, r[0], r[1]))


class _Channels(NamedTuple):
    maps: tuple[vegas.AdaptiveMap, ...]
    kinds: tuple[str, ...]
    """'two-photon' or 'annihilation': the analytic map under each vegas map"""
    alpha: tuple[float, ...]
    """the fraction of the points each channel generates"""


def _channel_kinds(opts: Mapping[str, Any]) -> tuple[str, ...]:
    """The channels of a final state: two two-photon maps (e- or e+ tagged) and, where the
    annihilation map applies, a third for the annihilation-like points; mu mu tau tau has
    only the annihilation map, e e e e (identical fermions) only the two-photon maps. A map
    forced by the option ``map`` is the only one."""
    if opts.get("map") == "two-photon" or opts["final_state"] == "eeee":
        return ("two-photon", "two-photon")
    if opts.get("map") == "annihilation" or opts["final_state"] == "mumutautau":
        return ("annihilation",)
    return ("two-photon", "two-photon", "annihilation")


def _assigned(tag: NDArray[np.int8], kinds: tuple[str, ...]) -> NDArray[np.int8]:
    """The channel a point trains (tags of :func:`_train_channel`): with an annihilation
    channel, the annihilation-like points train it; without, every point trains the two-photon
    map of its tagged lepton; a lone channel trains on everything."""
    if len(kinds) == 1:
        return np.zeros_like(tag)
    if len(kinds) == 3:
        return np.where(tag >= 2, 2, tag).astype(np.int8)
    return (tag % 2).astype(np.int8)


def _map_point(kind: str, x: Array, u: Array, opts: Mapping[str, Any]) -> _Point:
    if kind == "annihilation":
        return _phase_space_s(x, u, opts)
    return _phase_space_t(x, u, opts)


def _sample(
    ch: _Channels,
    n: int,
    rng: np.random.Generator,
    opts: Mapping[str, Any],
    filt: Any,
    r: tuple[float, float],
    *,
    everywhere: bool = False,
) -> _Sampled:
    """n points from the multi-channel density; weights exact where the filter passes (or
    everywhere with ``everywhere``; elsewhere 0: the matrix element is not evaluated).

    A point's weight is ``dsigma/dPhi / sum_c alpha_c rho_c(Phi)``, with ``rho_c`` the density
    of channel c over the invariant phase space (its vegas Jacobian times its analytic map's
    d(Phi)/dx, at that channel's coordinates of the point: :func:`_inverse_t`,
    :func:`_inverse_s` and :meth:`vegas.AdaptiveMap.invmap`).
    """
    alpha = np.asarray(ch.alpha)
    which = np.minimum(np.searchsorted(np.cumsum(alpha), rng.random(n), "right"), alpha.size - 1)
    u = rng.random((n, _N_EXTRA))
    parts: list[_Point] = []
    order: list[NDArray[np.intp]] = []
    for c, kind in enumerate(ch.kinds):
        sel = np.flatnonzero(which == c)
        y = rng.random((sel.size, _DIM))
        x = np.empty_like(y)
        jj = np.empty(sel.size)
        if sel.size:
            ch.maps[c].map(y, x, jj)
        parts.append(_map_point(kind, x, u[sel], opts))
        order.append(sel)
    point = _concat_points(parts, order, n)
    # the density of every channel at every point
    rho = np.zeros(n)
    coords: dict[str, tuple[Array, Array]] = {}
    for kind in set(ch.kinds):
        x_k = _own_x(parts, order, n)
        jac_k = point.jac_inv.copy()
        # points made by the other kind of map: their coordinates in this one
        other = np.concatenate(
            [sel for c, sel in enumerate(order) if ch.kinds[c] != kind] or [np.empty(0, int)]
        )
        other = other[point.jac_inv[other] > 0.0]  # a point outside its own map weighs 0
        if other.size:
            inv = _inverse_s if kind == "annihilation" else _inverse_t
            x_k[other], jac_k[other] = inv(point.p[other], opts)
        coords[kind] = (x_k, jac_k)
    for c, kind in enumerate(ch.kinds):
        x_k, jac_k = coords[kind]
        yy = np.empty_like(x_k)
        jv = np.empty(n)
        ch.maps[c].invmap(np.ascontiguousarray(x_k), yy, jv)
        good = jac_k > 0.0
        rho[good] += alpha[c] / (jv[good] * jac_k[good])
    point, _, passed, region, pdg, p4 = _target(
        point, str(opts["final_state"]), filt, r, rng, everywhere=everywhere
    )
    safe = np.where(rho > 0.0, rho, 1.0)
    weight = np.where(point.f > 0.0, point.f / point.jac_inv.clip(1e-300) / safe, 0.0)
    return _Sampled(point, weight, passed, region, pdg, p4)


def _own_x(parts: list[_Point], order: list[NDArray[np.intp]], n: int) -> Array:
    x = np.empty((n, _DIM))
    for part, sel in zip(parts, order, strict=True):
        x[sel] = part.x
    return x


def _concat_points(parts: list[_Point], order: list[NDArray[np.intp]], n: int) -> _Point:
    """Points of several channels back in the order of the draws."""
    if len(parts) == 1:
        return parts[0]

    def merge(get: Any) -> Any:
        first = get(parts[0])
        out = np.empty((n, *first.shape[1:]), dtype=first.dtype)
        for part, sel in zip(parts, order, strict=True):
            out[sel] = get(part)
        return out

    k0 = parts[0].kin
    kin = me.Kinematics(
        merge(lambda q: q.kin.p),
        merge(lambda q: q.kin.cos_half),
        merge(lambda q: q.kin.sin_half),
        merge(lambda q: q.kin.t13),
        merge(lambda q: q.kin.t24),
        k0.masses,
    )
    return _Point(
        merge(lambda q: q.f),
        merge(lambda q: q.p),
        merge(lambda q: q.p4_lab),
        merge(lambda q: q.q2),
        merge(lambda q: q.w),
        merge(lambda q: q.tag),
        kin,
        merge(lambda q: q.jac_inv),
        merge(lambda q: q.x),
    )


@functools.lru_cache(maxsize=16)
def _trained(frozen_opts: Any, frozen_filt: Any) -> tuple[_Channels, dict[str, float]]:
    """The channels' vegas maps adapted to the target density (fixed seed, cached) and the
    integrals of an integration pass."""
    opts = dict(frozen_opts)
    filt = _thaw(frozen_filt)
    fs = str(opts["final_state"])
    r = _suppressions(opts)
    rng = np.random.default_rng(_TRAIN_SEED)
    kinds = _channel_kinds(opts)
    maps = []
    integrals = []
    for c, kind in enumerate(kinds):
        amap = vegas.AdaptiveMap([[0.0, 1.0]] * _DIM, ninc=_N_INCREMENTS)
        total = 0.0
        for _ in range(_TRAIN_ITERATIONS):
            y = rng.random((_TRAIN_POINTS, _DIM))
            x = np.empty_like(y)
            jac = np.empty(_TRAIN_POINTS)
            amap.map(y, x, jac)
            point = _map_point(kind, x, rng.random((_TRAIN_POINTS, _N_EXTRA)), opts)
            point, t, _, _, _, _ = _target(point, fs, filt, r, rng)
            t = t * jac * (_assigned(point.tag, kinds) == c)
            total = float(t.mean())
            amap.add_training_data(y, t * t)
            amap.adapt(alpha=0.5)
        maps.append(amap)
        integrals.append(max(total, 1e-300))
    share = np.maximum(np.array(integrals) / sum(integrals), _ALPHA_MIN)
    channels = _Channels(tuple(maps), kinds, tuple((share / share.sum()).tolist()))
    # integration pass: the equivalent cross section and the weight distribution
    sums = dict.fromkeys(("filt", "filt2"), 0.0)
    w_keep: list[Array] = []
    esc: list[Array] = []
    done = 0
    while done < _INTEGRATION_POINTS:
        m = min(_BATCH, _INTEGRATION_POINTS - done)
        smp = _sample(channels, m, rng, opts, filt, r)
        w = smp.weight
        wf = np.where(smp.passed, w, 0.0)
        sums["filt"] += float(wf.sum())
        sums["filt2"] += float(np.sum(wf * wf))
        keep = smp.passed & (w > 0.0)
        w_keep.append(w[keep])
        esc.append(smp.region[keep])
        done += m
    n = _INTEGRATION_POINTS
    w_all = np.concatenate(w_keep)
    region = np.concatenate(esc)
    escape = region == 1
    sigma_eq = float(w_all[escape].mean()) if np.any(escape) else float(w_all.mean())
    ratio = w_all / sigma_eq
    r_of = _density_factor(region, r)
    kept_each = np.minimum(ratio * r_of, 1.0)
    kept = float(np.sum(kept_each))

    def err(a: str, b: str) -> float:
        return math.sqrt(max(sums[b] / n - (sums[a] / n) ** 2, 0.0) / n)

    info = {
        "sigma_equivalent_fb": sigma_eq,
        "sigma_filtered_fb": sums["filt"] / n,
        "sigma_filtered_err_fb": err("filt", "filt2"),
        "sigma_passable_fb": float(w_all[escape].sum()) / n,
        "channel_fractions": list(channels.alpha),
        "fraction_above_design_weight": (
            float(np.sum(ratio * r_of > 1.0)) / kept if kept > 0 else 0.0
        ),
        "max_weight_over_target": float(ratio.max()) if ratio.size else 0.0,
        "kept_per_point": kept / n,
    }
    return channels, info


def _suppressions(opts: Mapping[str, Any]) -> tuple[float, float]:
    return float(opts["detected_suppression"]), float(opts["far_suppression"])


def _setup(
    opts: Mapping[str, Any], filt: Mapping[str, Any] | None
) -> tuple[_Channels, dict[str, float]]:
    phys = {k: v for k, v in opts.items() if k != "target_weight_fb"}
    return _trained(_freeze(phys), _freeze(filt) if filt is not None else None)


def cross_section(
    options: Mapping[str, Any] | None = None, filt: Mapping[str, Any] | None = None
) -> dict[str, float]:
    """Integrals of the trained sampler (fb): total and filtered cross sections and the
    equivalent cross section (see :func:`describe`)."""
    opts = resolve_options({"options": dict(options or {})})
    return dict(_setup(opts, filt)[1])


def generate(
    n: int,
    rng: np.random.Generator,
    options: Mapping[str, Any] | None = None,
    filt: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Generate ``n`` weighted phase-space points (no filter applied, no unweighting).

    Returns
    -------
    dict
        ``p_cm`` (n, 6, 4) c.m. momenta p1..p6, ``p4_lab`` (n, 4, 4) lab momenta of p3..p6,
        ``pdg`` (4,), ``particles_pdg`` (n, k) and ``particles_p4`` (n, k, 4) (the final state
        as written: for tau pairs the decay products), ``weight`` (fb, ``dsigma/(g n)``: the
        sum estimates the cross section; the matrix element is evaluated at every point),
        ``passed`` (filter mask), ``region`` (1: can pass the selection, 0: cannot, -1: M_recoil^2
        beyond the analysis), ``q2`` (n, 2) and ``w``.
    """
    opts = resolve_options({"options": dict(options or {})})
    channels, _ = _setup(opts, filt)
    smp = _sample(channels, n, rng, opts, filt, _suppressions(opts), everywhere=True)
    return {
        "p_cm": smp.point.p,
        "p4_lab": smp.point.p4_lab,
        "pdg": _pdg_codes(str(opts["final_state"])),
        "particles_pdg": smp.pdg,
        "particles_p4": smp.p4,
        "weight": smp.weight / n,
        "passed": smp.passed,
        "region": smp.region,
        "q2": smp.point.q2,
        "w": smp.point.w,
    }


def chunk(settings: Mapping[str, Any], n_generate: int, seed: int) -> ChunkResult:
    """Generate one chunk of e+e- -> e+e- f fbar (the chunk interface of backgrounds).

    Parameters
    ----------
    settings
        :func:`zprime.generators.backgrounds.sample_settings` of the sample: ``options``
        (:data:`OPTION_DOCS`), ``filter``, ``target_weight_fb`` and ``n_total`` (set by the
        driver; enable the partial unweighting).
    n_generate
        Phase-space points to try in this chunk.
    seed
        Seed of :func:`numpy.random.default_rng`.

    Returns
    -------
    zprime.generators.chunk.ChunkResult
        The kept events (e-, e+, f-, f+ in the lab; truth ``q2_minus``, ``q2_plus``,
        ``w_pair``) with weights in fb, ``n_generate``, and the cross section of the points
        (before the filter) with its statistical error.
    """
    name = settings.get("name", "eemumu")
    if n_generate <= 0:
        raise InputError(f"background sample '{name}': n_generate must be positive")
    opts = resolve_options(settings)
    check_filter(settings)
    filt = settings.get("filter")
    channels, info = _setup(opts, filt)
    r = _suppressions(opts)
    w_t = opts["target_weight_fb"]
    threshold = None
    if w_t is not None:
        n_total = settings.get("n_total")
        if n_total is None:
            n_total = math.ceil(info["sigma_equivalent_fb"] / w_t)
        threshold = float(w_t) * float(n_total)
    rng = np.random.default_rng(seed)
    parts: list[ak.Array] = []
    sum_w = sum_w2 = 0.0
    done = 0
    while done < n_generate:
        m = min(_BATCH, n_generate - done)
        smp = _sample(channels, m, rng, opts, filt, r)
        u_keep = rng.random(m)
        w_pt = smp.weight
        sum_w += float(w_pt.sum())
        sum_w2 += float(np.sum(w_pt * w_pt))
        keep = smp.passed & (w_pt > 0.0)
        if threshold is not None:
            thr = threshold / _density_factor(smp.region, r)
            keep &= u_keep * thr < w_pt
            w_pt = np.where(keep, np.maximum(w_pt, thr), w_pt)
        index = np.flatnonzero(keep)
        pdg = smp.pdg[index]
        present = pdg != 0
        particles = make_particles(pdg[present], smp.p4[index][present], counts=present.sum(axis=1))
        parts.append(
            ak.to_packed(
                ak.zip(
                    {
                        "event": (done + index).astype(np.int64),
                        "weight": w_pt[index] / n_generate,
                        "particles": particles,
                        "q2_minus": smp.point.q2[index, 0],
                        "q2_plus": smp.point.q2[index, 1],
                        "w_pair": smp.point.w[index],
                    },
                    depth_limit=1,
                )
            )
        )
        done += m
    events = ak.concatenate(parts) if len(parts) > 1 else parts[0]
    n = n_generate
    sigma = sum_w / n
    err = math.sqrt(max(sum_w2 / n - sigma * sigma, 0.0) / max(n - 1, 1))
    return ChunkResult(ak.to_packed(events), int(n_generate), sigma, err)


def describe(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the settings and describe the generator (the backgrounds hook).

    Returns
    -------
    dict
        ``generator``, ``br_weight`` (1.0), ``sigma_equivalent_fb`` (the driver generates
        ``luminosity_factor L sigma_equivalent`` points, so that events that can pass the
        selection get weights near ``1/(luminosity_factor L)``), the total and filtered cross
        sections with errors, ``n_diagrams`` and ``fourfermion_options``.

    Raises
    ------
    ConfigError
        For a wrong option, a normalisation other than ``generator``, or a missing filter.
    """
    opts = resolve_options(settings)
    name = settings.get("name", "eemumu")
    if settings.get("normalisation", "generator") != "generator":
        raise ConfigError(
            f"backgrounds.samples.{name}.normalisation must be 'generator' for "
            "zprime.generators.fourfermion (the cross section is its own exact one)"
        )
    check_filter(settings)
    _, info = _setup(opts, settings.get("filter"))
    return {
        "generator": "zprime.generators.fourfermion (exact tree-level QED, "
        f"{me.diagram_count(str(opts['final_state']))} diagrams, vegas {vegas.__version__})",
        "br_weight": 1.0,
        **info,
        "n_diagrams": me.diagram_count(str(opts["final_state"])),
        "fourfermion_options": {k: v for k, v in opts.items() if not k.startswith("_")},
    }
