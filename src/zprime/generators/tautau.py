"""e+e- -> tau+ tau- (gamma) at Belle II with spin-correlated tau decays (the ``tautau`` sample).

This module owns the production of tau pairs and the sample's chunk function; the decays are
:mod:`zprime.generators.tau_decays`.

Production
----------
- Hard process ``e+e- -> gamma* -> tau+ tau-`` at Born level with the tau mass:
  ``dsigma/dcos(theta) ~ 1 + cos^2(theta) + (1 - beta^2) sin^2(theta)``,
  ``sigma(s) = (4 pi alpha^2 / 3 s) beta (3 - beta^2) / 2``. Z exchange is neglected: its
  interference is of relative size ``(s / m_Z^2) g_A^e g_A^tau``-ish, about 1% in the
  forward-backward asymmetry and below that in the rate at 10.58 GeV.
- ISR by the Kuraev-Fadin structure function on both beams (:mod:`zprime.generators.isr`): each
leg's
  momentum fraction ``x`` is drawn from ``D(x)/x`` (the ``1/s_hat`` of the hard cross section
  shared between the legs; a tabulated inverse CDF in the variable ``u`` of
  :func:`zprime.generators.isr.sample_energy_loss`, 8192 bins, cut at ``x >= m_min^2/s``), then
  accepted
  with ``beta (3 - beta^2)/2`` and ``x1 x2 s >= m_min^2``. The photons are collinear with the
  beams and written as pdg 22 particles when their energy is non-zero. The hard system is
  boosted along z, then c.m. -> lab (:func:`zprime.physics.kinematics.cm_to_lab`; 7 GeV e- along
  +z).
- Final-state radiation off the taus is **not** generated (nor radiation in the decays).
- Normalisation: the reference cross section ``xsec_ref_fb`` (0.919 nb, KKMC, Belle II Physics
  Book, E. Kou et al., PTEP 2019, 123C01, arXiv:1808.10567) times the branching weight ``B`` of
  the generated (tau-, tau+) mode pairs: ``(sum of the forced BRs)^2`` with ``channels`` alone,
  the sum of ``BR_i BR_j`` over the pairs with at least one tau in ``require_one_of`` when that
  is set. The pairs are drawn with probability ``q_ij = BR_i BR_j r_i r_j / Z`` (``r`` the
  ``mode_weights``, 1 by default) and an event of pair (i, j) weighs
  ``xsec_ref_fb * B * f_ij / n_generate`` with ``f_ij = (BR_i BR_j / B) / q_ij``: exact weights
  (the mean of f is 1), more events where ``r`` is large. Pairs with ``r_i r_j = 1`` weigh
  ``xsec_ref_fb * Z / n_generate``, so the sample's equivalent cross section (the driver's
  ``sigma_equivalent_fb``) is ``xsec_ref_fb * Z``. The generator's own ``sigma_fb`` is the
  Born x ISR cross section above ``m_min_gev`` with ``alpha(0)`` (no vacuum polarisation, so
  ~7% below KKMC), without the branching weight.

Spin correlations
-----------------
The spin-correlation matrix of ``gamma* -> tau- tau+`` (Y. S. Tsai, Phys. Rev. D 4 (1971) 2821;
the KORALB/TAUOLA form, S. Jadach, Z. Was, Comput. Phys. Commun. 36 (1985) 191), in the tau rest
frames reached by rotation-free boosts from the hard c.m. frame, with the common axes
``z'`` = tau- direction, ``x'`` in the (beam, tau) plane (``x' = (cos th cos ph, cos th sin ph,
-sin th)``), ``y' = z' x x'``; ``theta`` the tau- polar angle to the e- beam, ``beta`` the tau
velocity, ``1/gamma^2 = 1 - beta^2``:

    R_00 = 1 + c^2 + s^2/gamma^2      R_xx = (2 - beta^2) s^2      R_yy = -beta^2 s^2
    R_zz = 1 + c^2 - s^2/gamma^2      R_xz = R_zx = -2 s c / gamma    (others 0)

(at threshold the pair is a spin triplet aligned with the beam; for beta -> 1 the helicities are
opposite, ``R_zz = R_00``). The test suite checks it against explicit Dirac spinors. With
``spin_correlations: false`` the decays are independent and isotropic.

Options (``backgrounds.samples.<name>.options``)
------------------------------------------------
``channels`` (list; default all), ``spin_correlations`` (true), ``isr`` (true),
``keep_neutrinos`` (false: neutrinos are not written; they are invisible), ``keep_isr_photons``
(false: the initial-state photons, exactly collinear with the beams, leave through the beam pipe
and are invisible to the detector; ``sqrt_s_hat`` records their effect), ``m_min_gev`` (3.6),
``branching_fractions`` (``{mode: value}`` overrides of :data:`tau_decays.MODES`),
``require_one_of`` (list of channels; null: every pair of forced channels) and ``mode_weights``
(``{channel: r}``, r in (0, 1]): the importance sampling over mode pairs described under
"Normalisation".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, NamedTuple

import awkward as ak
import numpy as np
from numpy.typing import NDArray

from zprime.errors import ConfigError, InputError
from zprime.generators import tau_decays as td
from zprime.generators.chunk import ChunkResult
from zprime.generators.filters import filter_mask
from zprime.generators.isr import beta_isr, isr_kinematics, sample_energy_loss
from zprime.io.events import make_particles
from zprime.physics.constants import ALPHA_0, BETA_BOOST, GEV2_TO_FB, M_TAU, SQRT_S, S
from zprime.physics.kinematics import boost_z, cm_to_lab

__all__ = [
    "MODE_CODES",
    "TauTauEvents",
    "chunk",
    "correlation_matrix",
    "describe",
    "generate",
    "resolve_options",
]

MODE_CODES = td.MODE_CODES
"""Codes of the ``tau_minus_mode`` / ``tau_plus_mode`` columns."""

GENERATOR_NAME = "zprime.generators.tautau 1.0 (Born + KF ISR, TAUOLA-method spin correlations)"
_BATCH = 50_000
"""Tau pairs per internal batch (50k: the padded arrays stay in cache, ~1.5x faster than 200k)."""

_DEFAULTS: dict[str, Any] = {
    "channels": None,
    "spin_correlations": True,
    "isr": True,
    "keep_neutrinos": False,
    "keep_isr_photons": False,
    "m_min_gev": 3.6,
    "branching_fractions": None,
    "mode_weights": None,
    "require_one_of": None,
}


def resolve_options(options: Mapping[str, Any] | None, name: str = "tautau") -> dict[str, Any]:
    """Validate the generator options and fill the defaults.

    Parameters
    ----------
    options
        ``settings["options"]``.
    name
        Sample name, used in the error messages.

    Raises
    ------
    ConfigError
        One line naming ``backgrounds.samples.<name>.options.<key>``.
    """
    where = f"backgrounds.samples.{name}.options"
    opts = dict(_DEFAULTS)
    for key, value in (options or {}).items():
        if key not in _DEFAULTS:
            raise ConfigError(f"{where}.{key}: unknown option (known: {', '.join(_DEFAULTS)})")
        opts[key] = value
    for key in ("spin_correlations", "isr", "keep_neutrinos", "keep_isr_photons"):
        if not isinstance(opts[key], bool):
            raise ConfigError(f"{where}.{key} must be true or false, got {opts[key]!r}")
    try:
        m_min = float(opts["m_min_gev"])
    except (TypeError, ValueError):
        raise ConfigError(f"{where}.m_min_gev must be a number") from None
    if not 2.0 * M_TAU < m_min < SQRT_S:
        raise ConfigError(f"{where}.m_min_gev = {m_min} must lie in (2 m_tau, sqrt(s)) GeV")
    opts["m_min_gev"] = m_min
    channels = opts["channels"]
    if channels is None:
        channels = [g for g in td.CHANNEL_GROUPS if g != "a1"]
    if isinstance(channels, str) or not channels:
        raise ConfigError(f"{where}.channels must be a non-empty list of channel names")
    for c in channels:
        if c not in td.CHANNEL_GROUPS:
            raise ConfigError(
                f"{where}.channels: unknown channel '{c}' (known: {', '.join(td.CHANNEL_GROUPS)})"
            )
    opts["channels"] = list(channels)
    brs = opts["branching_fractions"] or {}
    if not isinstance(brs, Mapping):
        raise ConfigError(f"{where}.branching_fractions must be a mapping {{mode: value}}")
    for k, v in brs.items():
        if k not in td.MODE_CODES:
            raise ConfigError(
                f"{where}.branching_fractions: unknown mode '{k}' "
                f"(known: {', '.join(td.MODE_CODES)})"
            )
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0.0 <= v <= 1.0:
            raise ConfigError(f"{where}.branching_fractions.{k} must be a number in [0, 1]")
    table = td.branching_fractions(brs)
    total = sum(table.values())
    if total > 1.0 + 1e-9:
        raise ConfigError(
            f"{where}.branching_fractions: branching fractions sum to {total:.6g} > 1"
        )
    modes = sorted(
        {m for c in opts["channels"] for m in td.CHANNEL_GROUPS[c]}, key=td.MODE_CODES.get
    )
    modes = [m for m in modes if table[m] > 0.0]
    if not modes:
        raise ConfigError(f"{where}.channels: the forced channels have zero branching fraction")
    opts["branching_fractions"] = dict(brs)
    opts["_modes"] = modes
    opts["_codes"] = np.array([td.MODE_CODES[m] for m in modes], dtype=np.int64)
    br = np.array([table[m] for m in modes])
    opts["_br_forced"] = float(br.sum())
    opts["_p"] = br / br.sum()
    opts["_k"] = td.max_multiplicity(opts["_codes"].tolist())
    _pair_table(opts, modes, br, where)
    return opts


def _group_of(mode: str) -> list[str]:
    return [g for g, members in td.CHANNEL_GROUPS.items() if mode in members and g != "a1"]


def _pair_table(
    opts: dict[str, Any], modes: list[str], br: NDArray[np.float64], where: str
) -> None:
    """The (tau-, tau+) mode pairs, their sampling probabilities and weight factors.

    ``mode_weights`` r (per channel, default 1) and ``require_one_of`` R (channels of which at
    least one tau must decay to, default none) define an importance sampling over the pairs:
    a pair (i, j) of allowed modes (i or j in R) is drawn with probability
    q_ij = BR_i BR_j r_i r_j / Z and its events weigh f_ij = (BR_i BR_j / B) / q_ij, with
    B = sum of BR_i BR_j over the allowed pairs (the branching weight of the sample) and Z the
    normalisation. Weights stay exact: E_q[f] = 1. Pairs with r_i r_j = 1 get
    f = Z / B, so the sample's equivalent cross section is xsec_ref_fb * Z.
    """
    weights = opts["mode_weights"] or {}
    if not isinstance(weights, Mapping):
        raise ConfigError(f"{where}.mode_weights must be a mapping {{channel: weight}}")
    for key, value in weights.items():
        if key not in td.CHANNEL_GROUPS:
            raise ConfigError(
                f"{where}.mode_weights: unknown channel '{key}' "
                f"(known: {', '.join(td.CHANNEL_GROUPS)})"
            )
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= 1:
            raise ConfigError(f"{where}.mode_weights.{key} must be a number in (0, 1]")
    r = np.ones(len(modes))
    for i, mode in enumerate(modes):
        for group in (*_group_of(mode), *(["a1"] if mode in td.CHANNEL_GROUPS["a1"] else [])):
            if group in weights:
                r[i] = float(weights[group])
    require = opts["require_one_of"]
    if require is not None:
        if isinstance(require, str) or not require:
            raise ConfigError(f"{where}.require_one_of must be a non-empty list of channels")
        for c in require:
            if c not in td.CHANNEL_GROUPS:
                raise ConfigError(
                    f"{where}.require_one_of: unknown channel '{c}' "
                    f"(known: {', '.join(td.CHANNEL_GROUPS)})"
                )
        wanted = {m for c in require for m in td.CHANNEL_GROUPS[c]}
        flag = np.array([m in wanted for m in modes])
        if not flag.any():
            raise ConfigError(
                f"{where}.require_one_of: none of {list(require)} is among the forced channels"
            )
        allowed = flag[:, None] | flag[None, :]
    else:
        allowed = np.ones((len(modes), len(modes)), dtype=bool)
    b_ij = np.where(allowed, br[:, None] * br[None, :], 0.0)
    q_ij = b_ij * r[:, None] * r[None, :]
    big_b, big_z = float(b_ij.sum()), float(q_ij.sum())
    opts["_pair_br"] = big_b
    opts["_pair_z"] = big_z
    opts["_pair_cdf"] = np.cumsum(q_ij.ravel() / big_z)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(q_ij > 0, (b_ij / big_b) / (q_ij / big_z), 0.0)
    opts["_pair_f"] = f.ravel()


def br_weight(opts: Mapping[str, Any]) -> float:
    """Branching weight of the sample: the summed BR_i BR_j of its allowed (tau-, tau+) mode
    pairs ((sum of forced BRs)^2 when no pair is excluded)."""
    return float(opts["_pair_br"])


def equivalent_br(opts: Mapping[str, Any]) -> float:
    """Z = sum of BR_i BR_j r_i r_j over the allowed pairs: events of pairs with unit mode
    weights carry ``xsec_ref_fb * Z / n_generate``."""
    return float(opts["_pair_z"])


# --------------------------------------------------------------------------------------------
# production


def correlation_matrix(
    cos_theta: NDArray[np.float64], beta: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Spin-correlation matrix R (n, 4, 4) of gamma* -> tau- tau+ (first index tau-).

    Parameters
    ----------
    cos_theta
        Cosine of the tau- polar angle to the e- beam in the hard c.m. frame.
    beta
        Tau velocity in that frame.

    Notes
    -----
    Axes of both rest frames: ``z'`` along the tau-, ``x'`` in the production plane (module
    docstring); Tsai, PRD 4 (1971) 2821.
    """
    c = np.asarray(cos_theta, dtype=np.float64)
    b = np.asarray(beta, dtype=np.float64)
    s2 = 1.0 - c * c
    inv_g2 = 1.0 - b * b
    r = np.zeros((*c.shape, 4, 4))
    r[..., 0, 0] = 1.0 + c * c + s2 * inv_g2
    r[..., 1, 1] = (2.0 - b * b) * s2
    r[..., 2, 2] = -b * b * s2
    r[..., 3, 3] = 1.0 + c * c - s2 * inv_g2
    r[..., 1, 3] = r[..., 3, 1] = -2.0 * np.sqrt(s2) * c * np.sqrt(inv_g2)
    return r


def _f_beta(s_hat: NDArray[np.float64]) -> NDArray[np.float64]:
    b = np.sqrt(np.maximum(1.0 - 4.0 * M_TAU**2 / s_hat, 0.0))
    return b * (3.0 - b * b) / 2.0


@lru_cache(maxsize=16)
def _isr_table(m_min: float) -> tuple[NDArray[np.float64], NDArray[np.float64], float]:
    """Inverse-CDF table of one leg's u variable for the density D(x)/x on x >= m_min^2/s."""
    b = beta_isr(S)
    v_max = 1.0 - m_min**2 / S
    u_max = v_max ** (0.5 * b)
    u = np.linspace(0.0, u_max, 8193)
    v, w = sample_energy_loss(u, S)
    dens = w / (1.0 - v)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(u))])
    integral = float(cdf[-1])
    return cdf / integral, u, integral


class _Hard(NamedTuple):
    s_hat: NDArray[np.float64]
    beta_z: NDArray[np.float64]
    photons: NDArray[np.float64]  # (n, 2, 4) c.m. frame
    tries: int


def _sample_hard(n: int, rng: np.random.Generator, opts: Mapping[str, Any]) -> _Hard:
    if not opts["isr"]:
        return _Hard(np.full(n, S), np.zeros(n), np.zeros((n, 2, 4)), n)
    cdf, ugrid, _ = _isr_table(float(opts["m_min_gev"]))
    m2 = float(opts["m_min_gev"]) ** 2
    b = beta_isr(S)
    got: list[tuple[NDArray[np.float64], NDArray[np.float64]]] = []
    have = 0
    tries = 0
    while have < n:
        m = int((n - have) * 1.05) + 16
        v = np.power(np.interp(rng.random((2, m)), cdf, ugrid), 2.0 / b)
        x = 1.0 - v
        s_hat = x[0] * x[1] * S
        acc = (s_hat >= m2) & (rng.random(m) < _f_beta(np.maximum(s_hat, m2)))
        idx = np.flatnonzero(acc)
        if have + idx.size > n:  # trim deterministically: the tries up to the n-th acceptance
            idx = idx[: n - have]
            tries += int(idx[-1]) + 1
        else:
            tries += m
        got.append((v[0, idx], v[1, idx]))
        have += idx.size
    v1 = np.concatenate([g[0] for g in got])
    v2 = np.concatenate([g[1] for g in got])
    kin = isr_kinematics(v1, v2, SQRT_S)
    photons = np.stack([kin.photon_electron, kin.photon_positron], axis=1)
    return _Hard(kin.s_hat, kin.beta_z, photons, tries)


def generator_cross_section_fb(opts: Mapping[str, Any], acceptance: float = 1.0) -> float:
    """Born x ISR cross section above m_min with alpha(0), fb, for an accept fraction."""
    sigma0 = 4.0 * math.pi * ALPHA_0**2 / (3.0 * S) * GEV2_TO_FB
    if not opts["isr"]:
        return sigma0 * float(_f_beta(np.array(S)))
    integral = _isr_table(float(opts["m_min_gev"]))[2]
    return sigma0 * integral**2 * acceptance


def _cos_theta(n: int, rng: np.random.Generator, beta: NDArray[np.float64]) -> NDArray[np.float64]:
    """Exact draw from (2 - beta^2) + beta^2 c^2 on [-1, 1]: a mixture of flat and c^2."""
    b2 = beta * beta
    p_flat = 2.0 * (2.0 - b2) / (2.0 * (2.0 - b2) + 2.0 * b2 / 3.0)
    u = rng.random(n)
    flat = 2.0 * rng.random(n) - 1.0
    w = 2.0 * rng.random(n) - 1.0
    quad = np.sign(w) * np.cbrt(np.abs(w))
    return np.where(u < p_flat, flat, quad)


class TauTauEvents(NamedTuple):
    """Output of :func:`generate` (lab frame, fixed shape, pdg 0 = padding)."""

    pdg: NDArray[np.int64]
    """(n, k) PDG codes: 2 ISR photon slots, then the tau- products, then the tau+ products."""
    p4: NDArray[np.float64]
    """(n, k, 4) lab four-momenta (E, px, py, pz), GeV."""
    tau_minus_mode: NDArray[np.int64]
    tau_plus_mode: NDArray[np.int64]
    sqrt_s_hat: NDArray[np.float64]
    """c.m. energy of the hard tau pair after ISR, GeV."""
    tau_minus: NDArray[np.float64]
    """(n, 4) tau- lab four-momentum (truth)."""
    tau_plus: NDArray[np.float64]
    """(n, 4) tau+ lab four-momentum (truth)."""
    tries: int
    """Points drawn in the ISR accept-reject (for the generator's cross-section estimate)."""
    pair_weight: NDArray[np.float64]
    """Weight factor of the event's mode pair (1 without mode_weights; mean 1)."""


def generate(
    n: int, rng: np.random.Generator, options: Mapping[str, Any] | None = None
) -> TauTauEvents:
    """Generate n tau pairs with their (spin-correlated) decays, in the lab frame.

    Parameters
    ----------
    n
        Number of tau pairs (all accepted: weights stay uniform).
    rng
        Random generator.
    options
        Generator options (see :func:`resolve_options`), raw or resolved.

    Returns
    -------
    TauTauEvents
    """
    opts = options if options is not None and "_codes" in options else resolve_options(options)
    hard = _sample_hard(n, rng, opts)
    sq = np.sqrt(hard.s_hat)
    beta = np.sqrt(1.0 - 4.0 * M_TAU**2 / hard.s_hat)
    c = _cos_theta(n, rng, beta)
    phi = 2.0 * math.pi * rng.random(n)
    st = np.sqrt(1.0 - c * c)
    d = np.stack([st * np.cos(phi), st * np.sin(phi), c], axis=1)
    e = 0.5 * sq
    p = e * beta
    tm = np.concatenate([e[:, None], p[:, None] * d], axis=1)
    tp = np.concatenate([e[:, None], -p[:, None] * d], axis=1)
    axes = td.helicity_axes(d)
    codes = opts["_codes"]
    cdf = opts["_pair_cdf"]
    pair = np.minimum(np.searchsorted(cdf, rng.random(n), "right"), cdf.size - 1)
    cm = codes[pair // codes.size]
    cp = codes[pair % codes.size]
    pair_weight = opts["_pair_f"][pair]
    r = correlation_matrix(c, beta) if opts["spin_correlations"] else None
    k = int(opts["_k"])
    dm, dp, pm, pp, _ = td.decay_pair(tm, tp, axes, axes, r, cm, cp, rng, k=k)
    # hard frame -> e+e- c.m. -> lab: one boost along z with the composed velocity
    b_tot = (hard.beta_z + BETA_BOOST) / (1.0 + hard.beta_z * BETA_BOOST)
    prods = np.concatenate([pm, pp], axis=1)
    prods = boost_z(prods, b_tot[:, None])
    gam = cm_to_lab(hard.photons)
    pdg = np.concatenate(
        [
            np.where((hard.photons[..., 0] > 0.0) & bool(opts["keep_isr_photons"]), 22, 0),
            dm.pdg,
            dp.pdg,
        ],
        axis=1,
    ).astype(np.int64)
    if not opts["keep_neutrinos"]:
        pdg[:, 2:] = np.where(np.isin(np.abs(pdg[:, 2:]), (12, 14, 16)), 0, pdg[:, 2:])
    p4 = np.concatenate([gam, prods], axis=1)
    taus = boost_z(np.stack([tm, tp], axis=1), b_tot[:, None])
    return TauTauEvents(pdg, p4, cm, cp, sq, taus[:, 0], taus[:, 1], hard.tries, pair_weight)


# --------------------------------------------------------------------------------------------
# chunk interface


def describe(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the sample settings and describe the generator (the backgrounds hook).

    Returns
    -------
    dict
        ``generator``, ``br_weight``, ``sigma_equivalent_fb`` (= ``xsec_ref_fb * br_weight``),
        ``mode_codes``, ``channels`` (the forced modes).
    """
    name = str(settings.get("name", "tautau"))
    opts = resolve_options(settings.get("options"), name)
    bw = br_weight(opts)
    xsec = settings.get("xsec_ref_fb")
    if xsec is None:
        raise ConfigError(f"backgrounds.samples.{name}.xsec_ref_fb is required by {__name__}")
    return {
        "generator": GENERATOR_NAME,
        "br_weight": bw,
        "sigma_equivalent_fb": float(xsec) * equivalent_br(opts),
        "mode_codes": dict(MODE_CODES),
        "channels": list(opts["_modes"]),
    }


def chunk(settings: Mapping[str, Any], n_generate: int, seed: int) -> ChunkResult:
    """Generate one chunk of the tau-pair sample (the chunk interface of
    zprime.generators.backgrounds).

    Parameters
    ----------
    settings
        ``name``, ``filter``, ``normalisation``, ``xsec_ref_fb``, ``options``.
    n_generate
        Tau pairs to generate (accepted by the spin accept-reject) before the filter.
    seed
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    ChunkResult
        Kept events with ``event``, ``weight`` (fb), ``particles``, ``sqrt_s_hat``,
        ``tau_minus_mode``, ``tau_plus_mode``; ``sigma_fb`` is the generator's Born x ISR cross
        section (without the branching weight).
    """
    name = str(settings.get("name", "tautau"))
    if n_generate <= 0:
        raise InputError(f"background sample '{name}': n_generate must be positive")
    opts = resolve_options(settings.get("options"), name)
    bw = br_weight(opts)
    filt = dict(settings.get("filter") or {"enabled": False})
    if filt.get("min_tracks") is None:
        filt["enabled"] = False
    rng = np.random.default_rng(seed)
    kept: list[ak.Array] = []
    done = 0
    tries = 0
    while done < n_generate:
        m = min(_BATCH, n_generate - done)
        ev = generate(m, rng, opts)
        tries += ev.tries
        mask = filter_mask(ev.pdg, ev.p4, filt)
        idx = np.flatnonzero(mask)
        pdg = ev.pdg[idx]
        nz = pdg != 0
        particles = make_particles(pdg[nz], ev.p4[idx][nz], nz.sum(axis=1))
        kept.append(
            ak.to_packed(
                ak.zip(
                    {
                        "event": (done + idx).astype(np.int64),
                        "weight": ev.pair_weight[idx],
                        "particles": particles,
                        "sqrt_s_hat": ev.sqrt_s_hat[idx],
                        "tau_minus_mode": ev.tau_minus_mode[idx].astype(np.int32),
                        "tau_plus_mode": ev.tau_plus_mode[idx].astype(np.int32),
                    },
                    depth_limit=1,
                )
            )
        )
        done += m
    acc = n_generate / tries
    sigma_fb = generator_cross_section_fb(opts, acc)
    sigma_err_fb = sigma_fb * math.sqrt(max(1.0 - acc, 0.0) / (acc * tries)) if opts["isr"] else 0.0
    if settings.get("normalisation", "reference") == "reference":
        sigma_norm = float(settings["xsec_ref_fb"]) * bw
    else:
        sigma_norm = sigma_fb * bw
    events = ak.concatenate(kept) if len(kept) > 1 else kept[0]
    events = ak.with_field(events, events["weight"] * (sigma_norm / n_generate), "weight")
    return ChunkResult(ak.to_packed(events), int(n_generate), sigma_fb, sigma_err_fb)
