"""Vectorized tau decays with polarimeter vectors, for spin-correlated tau-pair generation.

This module owns the tau decay library of zprime: the table of decay modes and their branching
fractions (:data:`MODES`, :data:`MODE_CODES`, :data:`CHANNEL_GROUPS`), the generation of tau
decays in the tau rest frame, vectorized over events (:func:`decay_rest`), the polarimeter vector
of each decay, the boost of the decay products into any frame (:func:`rest_to_frame`) and the
spin-correlated accept-reject of a pair of decays for a given spin-correlation matrix
(:func:`spin_weight`, :func:`decay_pair`). The production process is not part of it, so that a
tau pair from a scalar or vector resonance can reuse it with its own matrix ``R``.

The method is that of TAUOLA / KORALB [1]_ [2]_: each tau is decayed unpolarised in its rest
frame, and the decay of a tau with spin (rest-frame polarisation vector) ``s`` has the rate
``dGamma(s) = dGamma_0 (1 + h . s)`` with ``h`` (``|h| <= 1``) the *polarimeter vector* of the
generated configuration. A pair of decays is accepted with probability ``w / w_max``,
``w = sum_{a,b=0..3} R_ab h-_a h+_b / R_00`` (``h_0 = 1``), ``w_max = 2`` (positivity of the
spin density matrix bounds ``|sum_ij R_ij h-_i h+_j| <= R_00`` for ``|h| <= 1``).

Polarimeter vectors (tau- at rest, spin ``s``; neutrino four-momentum ``N``):

- hadronic current ``J`` (``M = ubar(N) gamma^mu (1 - gamma5) u(P, s) J_mu``): ``|M|^2`` is
  ``Tr[Nslash gamma^mu (1 - gamma5)(Pslash - m s-slash) gamma^nu] J_mu J*_nu`` (the polarised
  spin projector ``(Pslash + m)(1 + gamma5 s-slash)/2`` keeps ``Pslash - m s-slash`` between the
  chiral projectors), linear in ``Q = P - m s``: ``|M|^2 = Q . T`` with
  ``T^a = 2 Re[(J* . N) J^a] - (J* . J) N^a + 2 eps^{a b c d} N_b Re(J)_c Im(J)_d`` (up to a
  constant, eps^{0123} = +1, the sign of the last term fixed by the explicit-Dirac test), so
  ``h = T_vec / T^0`` in the tau rest frame (TAUOLA's ``PIV``/``HV`` construction [2]_);
- ``tau- -> pi- nu``: ``h = +p_pi_hat``;
- ``tau- -> l- nubar_l nu_tau``: ``|M|^2 ~ (p_l . p_nutau)((p_tau - m s) . p_nubar)``, so per
  event ``h = p_nubar_hat`` (the full event polarimeter; its average at fixed lepton energy is the
  familiar ``-(1 - 2x)/(3 - 2x)`` along the lepton for m_l = 0).

The tau+ decays are the CP images of the tau- decays: momenta reversed, particles conjugated,
the same ``h`` (CP turns ``1 + h(p) . s`` for tau- into ``1 + h . s`` for tau+ with momenta
``-p``; strong phases are C-even), which the explicit-Dirac tests check.

Hadronic models
---------------
- ``rho``: ``J = F(s) (p_pi - p_pi0)``, F the sum of p-wave Breit-Wigners of Kuhn and
  Santamaria [3]_ ``m^2 / (m^2 - s - i sqrt(s) Gamma(s))``,
  ``Gamma(s) = Gamma (m/sqrt(s)) (p(s)/p(m^2))^3``, of the rho(770), rho(1450) and rho(1700)
  with the coefficients of CLEO's fit to tau -> pi pi0 nu (:data:`RHO_PIPI0_FIT`; without the
  rho' the visible-mass spectrum above 1 GeV was visibly short of Pythia's, which uses the same
  fit).
- ``a1``: Kuhn-Santamaria current [3]_ for both ``pi- pi- pi+`` and ``pi- pi0 pi0``:
  ``J = F_a1(Q^2) [F_rho(s13) V1 + F_rho(s23) V2]``, ``Vi = (p_i - p_3) - Q (Q.(p_i - p_3))/Q^2``,
  pion 3 the odd-charge one; a1 running width ``Gamma_a1 g(Q^2)/g(m_a1^2)`` with the
  three-pion phase-space parametrisation ``g`` of [3]_ as coded in TAUOLA [2]_ (an
  approximation of the exact 3-pion integral). Mass and width of the a1 from ``particle``.
- the grouped remaining modes (``1prong_other``, ``3prong_other``): phase space of the listed
  final states, ``h = 0`` (no spin analysing power).

pi0 -> gamma gamma isotropically in the pi0 rest frame (no pi0 in the output); neutral kaons are
written as K_L (pdg 130), which our detector model does not see (the K_S -> pi+ pi- fraction is
neglected; these modes are 1.4% of tau decays).

Branching fractions: PDG, Review of Particle Physics 2024 (S. Navas et al., Phys. Rev. D 110
(2024) 030001), tau listings; each value is cited by its PDG name next to it in :data:`MODES`.
Masses and widths of pi, pi0, K, K_L, rho and a1 from the ``particle`` package (PDG 2024).

References
----------
.. [1] S. Jadach, J. H. Kuhn, Z. Was, Comput. Phys. Commun. 64 (1991) 275 (TAUOLA);
       S. Jadach, Z. Was, R. Decker, J. H. Kuhn, Comput. Phys. Commun. 76 (1993) 361.
.. [2] S. Jadach, Z. Was, Comput. Phys. Commun. 36 (1985) 191 (KORALB), and the TAUOLA code
       (polarimeter vectors ``HV``, running a1 width ``GFUN``/``WGA1``).
.. [3] J. H. Kuhn, A. Santamaria, Z. Phys. C 48 (1990) 445.

Length: one decay library: the mode table, the per-mode kinematics and the polarimeter vectors share
their conventions, and half of the length is cited physics per mode.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray
from particle import Particle

from zprime.physics.constants import M_ELECTRON, M_MUON, M_TAU
from zprime.physics.dirac import minkowski_dot as _dot

__all__ = [
    "CHANNEL_GROUPS",
    "MODES",
    "MODE_CODES",
    "STATS",
    "DecayMode",
    "RestFrameDecays",
    "branching_fractions",
    "decay_pair",
    "decay_rest",
    "helicity_axes",
    "polarimeter_from_current",
    "rest_to_frame",
    "spin_weight",
]

F64 = NDArray[np.float64]


def _mass_width(pdgid: int) -> tuple[float, float]:
    p = Particle.from_pdgid(pdgid)
    return float(p.mass) / 1000.0, float(p.width or 0.0) / 1000.0


M_PI, _ = _mass_width(211)
M_PI0, _ = _mass_width(111)
M_K, _ = _mass_width(321)
M_KL, _ = _mass_width(130)
M_RHO, G_RHO = _mass_width(213)  # rho(770)+-: 775.11 MeV, 149.1 MeV
M_A1, G_A1 = _mass_width(20213)  # a1(1260): 1230 MeV, 420 MeV (PDG estimates)

_MASS = {
    11: M_ELECTRON,
    13: M_MUON,
    12: 0.0,
    14: 0.0,
    16: 0.0,
    22: 0.0,
    211: M_PI,
    111: M_PI0,
    321: M_K,
    130: M_KL,
}


@dataclass(frozen=True)
class DecayMode:
    """One tau- decay mode (the tau+ mode is its charge conjugate).

    Attributes
    ----------
    name
        Mode name (also the ``tau_minus_mode``/``tau_plus_mode`` label).
    code
        Integer code written in the event columns.
    group
        Channel name under which it can be forced (several modes may share a group).
    br
        Branching fraction.
    products
        PDG codes of the tau- decay products before pi0 -> gamma gamma (nu_tau first).
    model
        ``lepton``, ``two_body``, ``rho``, ``a1`` or ``phase_space``.
    """

    name: str
    code: int
    group: str
    br: float
    products: tuple[int, ...]
    model: str

    @property
    def out_pdg(self) -> tuple[int, ...]:
        """Final-state PDG codes after pi0 -> gamma gamma (the pi0 photons last)."""
        base = tuple(p for p in self.products if p != 111)
        n_pi0 = sum(p == 111 for p in self.products)
        return base + (22,) * (2 * n_pi0)


# PDG RPP 2024 tau branching fractions (Gamma_i/Gamma, in per cent), PDG mode names in comments.
MODES: tuple[DecayMode, ...] = (
    DecayMode("e", 1, "e", 0.1782, (16, 11, -12), "lepton"),  # e- nubar_e nu_tau 17.82(4)
    DecayMode("mu", 2, "mu", 0.1739, (16, 13, -14), "lepton"),  # mu- nubar_mu nu_tau 17.39(4)
    DecayMode("pi", 3, "pi", 0.1082, (16, -211), "two_body"),  # pi- nu_tau 10.82(5)
    DecayMode("K", 4, "K", 0.00696, (16, -321), "two_body"),  # K- nu_tau 0.696(10)
    DecayMode("rho", 5, "rho", 0.2549, (16, -211, 111), "rho"),  # pi- pi0 nu_tau 25.49(9)
    # pi- pi- pi+ nu_tau (ex. K0, omega) 8.99(5)
    DecayMode("a1_3prong", 6, "a1_3prong", 0.0899, (16, -211, -211, 211), "a1"),
    # pi- 2pi0 nu_tau (ex. K0) 9.26(10)
    DecayMode("a1_1prong", 7, "a1_1prong", 0.0926, (16, 111, 111, -211), "a1"),
    DecayMode("K_pi0", 8, "1prong_other", 0.00433, (16, -321, 111), "phase_space"),  # 0.433(15)
    DecayMode("pi_K0", 9, "1prong_other", 0.00838, (16, -211, 130), "phase_space"),  # 0.838(14)
    DecayMode("K_K0", 10, "1prong_other", 0.001486, (16, -321, 130), "phase_space"),  # 0.1486(34)
    # pi- 3pi0 nu_tau (ex. K0) 1.04(7)
    DecayMode("pi_3pi0", 11, "1prong_other", 0.0104, (16, -211, 111, 111, 111), "phase_space"),
    # pi- Kbar0 pi0 nu_tau 0.382(13)
    DecayMode("pi_pi0_K0", 12, "1prong_other", 0.00382, (16, -211, 111, 130), "phase_space"),
    # K- 2pi0 nu_tau (ex. K0) 0.065(22)
    DecayMode("K_2pi0", 13, "1prong_other", 0.00065, (16, -321, 111, 111), "phase_space"),
    # the unaccounted remainder 1 - sum(listed) = 1.50%, modelled as pi- 3pi0 phase space (it is
    # dominated by one-prong modes with several neutrals: pi- pi0 eta, h- 4pi0, omega -> pi0 gamma)
    DecayMode("1prong_rest", 14, "1prong_other", 0.0, (16, -211, 111, 111, 111), "phase_space"),
    # pi- pi- pi+ pi0 nu_tau (ex. K0, omega) 2.74(7)
    DecayMode("3pi_pi0", 15, "3prong_other", 0.0274, (16, -211, -211, 211, 111), "phase_space"),
    # pi- omega nu_tau 1.95(6), as pi- pi- pi+ pi0 phase space (omega -> pi+ pi- pi0 is 89%)
    DecayMode("pi_omega", 16, "3prong_other", 0.0195, (16, -211, -211, 211, 111), "phase_space"),
    # K- pi- pi+ nu_tau (ex. K0) 0.293(7)
    DecayMode("K_pi_pi", 17, "3prong_other", 0.00293, (16, -321, -211, 211), "phase_space"),
    # K- K+ pi- nu_tau 0.1435(27)
    DecayMode("K_K_pi", 18, "3prong_other", 0.001435, (16, -321, 321, -211), "phase_space"),
)
"""The tau- decay modes; ``1prong_rest`` gets the remainder so that the BRs sum to 1."""


def _with_remainder(modes: Sequence[DecayMode]) -> tuple[DecayMode, ...]:
    rest = 1.0 - sum(m.br for m in modes if m.name != "1prong_rest")
    return tuple(
        DecayMode(m.name, m.code, m.group, rest, m.products, m.model)
        if m.name == "1prong_rest"
        else m
        for m in modes
    )


MODES = _with_remainder(MODES)

MODE_CODES: dict[str, int] = {m.name: m.code for m in MODES}
"""Integer code of each mode in the ``tau_minus_mode`` / ``tau_plus_mode`` columns."""

CHANNEL_GROUPS: dict[str, tuple[str, ...]] = {}
for _m in MODES:
    CHANNEL_GROUPS.setdefault(_m.group, ())
    CHANNEL_GROUPS[_m.group] += (_m.name,)
CHANNEL_GROUPS["a1"] = ("a1_3prong", "a1_1prong")
"""Channel names accepted by the ``channels`` option and the modes each forces."""

_BY_CODE: dict[int, DecayMode] = {m.code: m for m in MODES}

STATS: dict[str, int] = {"weight_violations": 0, "spin_weight_violations": 0}
"""Counters of accept-reject weights found above their assumed maximum (should stay 0)."""


def branching_fractions(overrides: Mapping[str, float] | None = None) -> dict[str, float]:
    """Branching fraction of every mode, with optional per-mode overrides.

    Parameters
    ----------
    overrides
        ``{mode name: value}``; the ``1prong_rest`` remainder is not recomputed.
    """
    out = {m.name: m.br for m in MODES}
    for k, v in (overrides or {}).items():
        out[k] = float(v)
    return out


# --------------------------------------------------------------------------------------------
# kinematics helpers


def _pstar(m0: F64 | float, m1: float | F64, m2: float | F64) -> F64:
    """Two-body momentum in the rest frame of mass m0."""
    m0 = np.asarray(m0, dtype=np.float64)
    lam = (m0 * m0 - (m1 + m2) ** 2) * (m0 * m0 - (m1 - m2) ** 2)
    return np.sqrt(np.maximum(lam, 0.0)) / (2.0 * m0)


def _iso(n: int, rng: np.random.Generator) -> F64:
    """(n, 3) isotropic unit vectors."""
    c = 2.0 * rng.random(n) - 1.0
    phi = 2.0 * math.pi * rng.random(n)
    s = np.sqrt(np.maximum(1.0 - c * c, 0.0))
    return np.stack([s * np.cos(phi), s * np.sin(phi), c], axis=-1)


def _boost(p4: F64, parent: F64) -> F64:
    """Boost four-momenta given in the rest frame of ``parent`` into the frame of ``parent``.

    ``p4`` (..., k, 4) or (..., 4); ``parent`` (..., 4) four-momentum of the moving parent.
    """
    if p4.ndim == parent.ndim + 1:
        parent = parent[..., None, :]
    m = np.sqrt(np.maximum(_dot(parent, parent), 1e-300))
    pv = parent[..., 1:]
    e = p4[..., 0]
    pdotv = (
        np.einsum("...i,...i->...", p4[..., 1:], pv)
        if p4.ndim > 2
        else (p4[..., 1] * pv[..., 0] + p4[..., 2] * pv[..., 1] + p4[..., 3] * pv[..., 2])
    )
    e_new = (e * parent[..., 0] + pdotv) / m
    coef = pdotv / (m * (parent[..., 0] + m)) + e / m
    out = np.empty(np.broadcast_shapes(p4.shape, parent.shape))
    out[..., 0] = e_new
    out[..., 1:] = p4[..., 1:] + coef[..., None] * pv
    return out


def _two_body(parent_mass: F64, m1: float, m2: float, direction: F64) -> tuple[F64, F64]:
    """Rest-frame four-momenta of a two-body decay with daughter 1 along ``direction``."""
    p = _pstar(parent_mass, m1, m2)
    p3 = p[:, None] * direction
    e1 = np.sqrt(p * p + m1 * m1)
    e2 = np.sqrt(p * p + m2 * m2)
    return (
        np.concatenate([e1[:, None], p3], axis=1),
        np.concatenate([e2[:, None], -p3], axis=1),
    )


def _accept_reject(
    sample: Callable[[int, np.random.Generator], tuple[tuple[F64, ...], F64]],
    n: int,
    rng: np.random.Generator,
    w_max: float,
) -> tuple[F64, ...]:
    """Collect ``n`` samples accepted with probability ``w / w_max`` (vectorized, in rounds)."""
    parts: list[tuple[F64, ...]] = []
    got = 0
    eff = 0.5
    while got < n:
        need = n - got
        m = int(need / max(eff, 0.02) * 1.1) + 16
        payload, w = sample(m, rng)
        STATS["weight_violations"] += int(np.count_nonzero(w > w_max))
        acc = rng.random(m) * w_max < w
        eff = max(float(acc.mean()), 0.01)
        idx = np.flatnonzero(acc)[:need]
        parts.append(tuple(a[idx] for a in payload))
        got += idx.size
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(len(parts[0])))


def _eps_contract(a: F64, b: F64, c: F64) -> F64:
    """v^mu = eps^{mu nu rho sigma} a_nu b_rho c_sigma, eps^{0123} = +1, for (..., 4) arrays."""
    al, bl, cl = a.copy(), b.copy(), c.copy()
    for x in (al, bl, cl):
        x[..., 1:] *= -1.0
    out = np.zeros(np.broadcast_shapes(a.shape, b.shape, c.shape))
    for mu, (i, j, k), sign in _EPS_TERMS:
        out[..., mu] += sign * al[..., i] * bl[..., j] * cl[..., k]
    return out


def _eps_terms() -> list[tuple[int, tuple[int, int, int], float]]:
    terms = []
    for perm in itertools.permutations(range(4)):
        inv = sum(1 for x in range(4) for y in range(x + 1, 4) if perm[x] > perm[y])
        terms.append((perm[0], perm[1:], -1.0 if inv % 2 else 1.0))
    return terms


_EPS_TERMS = _eps_terms()


def polarimeter_from_current(j: NDArray[np.complex128], nu: F64) -> tuple[F64, F64]:
    """Polarimeter vector of tau- -> nu_tau + hadrons with hadronic current ``J``.

    Parameters
    ----------
    j
        (..., 4) hadronic current (upper index, complex or real), in the tau- rest frame.
    nu
        (..., 4) nu_tau four-momentum in the tau- rest frame.

    Returns
    -------
    h, t0
        (..., 3) polarimeter vector and the unpolarised rate ``T^0`` (up to a constant: the
        matrix element squared is ``m_tau (T^0 + h . s T^0)`` for spin ``s``).
    """
    a = np.real(j)
    if not np.iscomplexobj(j):  # real current: no axial (epsilon) term
        t = 2.0 * _dot(a, nu)[..., None] * a - _dot(a, a)[..., None] * nu
        return t[..., 1:] / t[..., 0:1], t[..., 0]
    b = j.imag
    jn_re = _dot(a, nu)  # Re(J* . N) with real N
    jn_im = _dot(b, nu)  # Re(J*.N) J = (a.N - i b.N)(a + i b)
    jj = _dot(a, a) + _dot(b, b)
    t = 2.0 * (jn_re[..., None] * a + jn_im[..., None] * b) - jj[..., None] * nu
    t = t + _EPS_SIGN * 2.0 * _eps_contract(nu, a, b)
    t0 = t[..., 0]
    return t[..., 1:] / t0[..., None], t0


_EPS_SIGN = 1.0
"""Sign of the axial-vector (epsilon) term, fixed by the explicit Dirac-spinor test."""


# --------------------------------------------------------------------------------------------
# decay models in the tau- rest frame; each returns (p4 (n, k, 4) in products order, h (n, 3))


def _lepton(n: int, rng: np.random.Generator, m_l: float) -> tuple[F64, F64]:
    """tau- -> l- nubar_l nu_tau with the V-A matrix element.

    Unpolarised ``|M|^2 ~ (p_l.p_nutau)(P.p_nubar)`` depends only on the nubar energy, i.e. on the
    mass ``t`` of the (l nu_tau) system, so nubar recoils against X(l nu_tau) and X decays
    isotropically; ``t`` has density ``(m^2 - t)^2 (t - m_l^2)^2 / t`` (matrix element times the
    two two-body phase-space factors), sampled by accept-reject.
    """
    m = M_TAU
    t_lo, t_hi = m_l * m_l, m * m

    def density(t: F64) -> F64:
        return (t_hi - t) ** 2 * (t - t_lo) ** 2 / t

    grid = np.linspace(t_lo, t_hi, 2001)[1:-1]
    w_max = float(density(grid).max()) * 1.01

    def sample(k: int, g: np.random.Generator) -> tuple[tuple[F64, ...], F64]:
        t = t_lo + (t_hi - t_lo) * g.random(k)
        return (t,), density(t)

    (t,) = _accept_reject(sample, n, rng, w_max)
    mx = np.sqrt(t)
    q = (m * m - t) / (2.0 * m)
    d = _iso(n, rng)
    nubar = np.concatenate([q[:, None], q[:, None] * d], axis=1)
    x = np.concatenate([(m - q)[:, None], -q[:, None] * d], axis=1)
    lep, nut = _two_body(mx, m_l, 0.0, _iso(n, rng))
    lep = _boost(lep, x)
    nut = _boost(nut, x)
    h = d  # the nubar_l direction
    return np.stack([nut, lep, nubar], axis=1), h


def _two_body_mode(n: int, rng: np.random.Generator, m_h: float) -> tuple[F64, F64]:
    d = _iso(n, rng)
    had, nu = _two_body(np.full(n, M_TAU), m_h, 0.0, d)
    return np.stack([nu, had], axis=1), d  # h = +p_h_hat for tau- (the nu_tau is left-handed)


def _bw_p(s: F64, m1: float, m2: float, mass: float, gamma: float) -> NDArray[np.complex128]:
    """p-wave Breit-Wigner m^2 / (m^2 - s - i sqrt(s) Gamma(s)), running width
    Gamma(s) = Gamma (m / sqrt(s)) (p(s) / p(m^2))^3 (Kuhn-Santamaria)."""
    sq = np.sqrt(s)
    p = _pstar(sq, m1, m2)
    p0 = float(_pstar(np.float64(mass), m1, m2))
    width = gamma * (mass / sq) * (p / p0) ** 3
    return mass**2 / (mass**2 - s - 1j * sq * width)


def _bw_rho(s: F64, m1: float, m2: float) -> NDArray[np.complex128]:
    """Kuhn-Santamaria p-wave rho(770) Breit-Wigner with the running width (the a1 current)."""
    return _bw_p(s, m1, m2, M_RHO, G_RHO)


RHO_PIPI0_FIT: tuple[tuple[float, float, complex], ...] = (
    (0.7746, 0.1490, 1.0 + 0.0j),
    (1.4080, 0.5020, -0.167 + 0.0j),
    (1.7000, 0.2350, 0.050 + 0.0j),
)
"""(mass, width, coefficient) of rho(770), rho(1450), rho(1700) in the pion form factor of
tau -> pi pi0 nu: CLEO's fit to its tau -> pi pi0 nu spectral function (S. Anderson et al.,
Phys. Rev. D 61 (2000) 112002; the same values are Pythia 8's)."""


def _form_factor_pipi0(s: F64) -> NDArray[np.complex128]:
    """F(s) = sum_k c_k BW_k(s) / sum_k c_k, the rho-rho'-rho'' form factor of tau -> pi pi0."""
    num = sum(c * _bw_p(s, M_PI, M_PI0, m, g) for m, g, c in RHO_PIPI0_FIT)
    return num / sum(c for _, _, c in RHO_PIPI0_FIT)


def _sample_s_bw(
    k: int, g: np.random.Generator, m: float, w: float, lo: float, hi: float
) -> tuple[F64, F64]:
    """s in [lo, hi] from a Cauchy (Breit-Wigner in s) proposal; returns s and 1/density."""
    a_lo = math.atan((lo - m * m) / (m * w))
    a_hi = math.atan((hi - m * m) / (m * w))
    a = a_lo + (a_hi - a_lo) * g.random(k)
    s = m * m + m * w * np.tan(a)
    inv_density = (a_hi - a_lo) * ((s - m * m) ** 2 + (m * w) ** 2) / (m * w)
    return s, inv_density


def _rho_sample(k: int, g: np.random.Generator) -> tuple[tuple[F64, ...], F64]:
    lo, hi = (M_PI + M_PI0) ** 2, M_TAU**2
    s, inv_g = _sample_s_bw(k, g, M_RHO, G_RHO, lo, hi)
    sq = np.sqrt(s)
    d = _iso(k, g)
    q = (M_TAU**2 - s) / (2.0 * M_TAU)
    nu = np.concatenate([q[:, None], -q[:, None] * d], axis=1)
    x = np.concatenate([(M_TAU - q)[:, None], q[:, None] * d], axis=1)
    pi, pi0 = _two_body(sq, M_PI, M_PI0, _iso(k, g))
    pi = _boost(pi, x)
    pi0 = _boost(pi0, x)
    # J = F_rho(s) (p_pi - p_pi0): the overall complex factor drops out of h, |F|^2 stays in rate
    h, t0 = polarimeter_from_current(pi - pi0, nu)
    bw = _form_factor_pipi0(s)
    # phase space: nu_tau momentum q (tau frame) x pion momentum / sqrt(s) (rho frame)
    w = t0 * (bw.real**2 + bw.imag**2) * q * _pstar(sq, M_PI, M_PI0) / sq * inv_g
    return (nu, pi, pi0, h), w


def _g_a1(q2: F64 | float) -> F64:
    """Three-pion phase-space function g(Q^2) of the running a1 width (Kuhn-Santamaria/TAUOLA)."""
    q2 = np.asarray(q2, dtype=np.float64)
    x = q2 - 9.0 * M_PI**2
    low = 4.1 * x**3 * (1.0 - 3.3 * x + 5.8 * x * x)
    high = q2 * (1.623 + 10.38 / q2 - 9.32 / q2**2 + 0.65 / q2**3)
    return np.where(q2 < (M_RHO + M_PI) ** 2, low, high)


def _bw_a1(q2: F64) -> NDArray[np.complex128]:
    width = G_A1 * _g_a1(q2) / float(_g_a1(M_A1**2))
    return M_A1**2 / (M_A1**2 - q2 - 1j * M_A1 * width)


def _three_body(
    sq: F64, m1: float, m2: float, m3: float, s13: F64, s23: F64, rng: np.random.Generator
) -> tuple[F64, F64, F64]:
    """Four-momenta of a three-body decay at rest with given s13, s23, randomly oriented."""
    s = sq * sq
    s12 = s + m1 * m1 + m2 * m2 + m3 * m3 - s13 - s23
    e1 = (s + m1 * m1 - s23) / (2.0 * sq)
    e2 = (s + m2 * m2 - s13) / (2.0 * sq)
    p1 = np.sqrt(np.maximum(e1 * e1 - m1 * m1, 0.0))
    p2 = np.sqrt(np.maximum(e2 * e2 - m2 * m2, 0.0))
    c12 = (e1 * e2 - 0.5 * (s12 - m1 * m1 - m2 * m2)) / np.maximum(p1 * p2, 1e-300)
    c12 = np.clip(c12, -1.0, 1.0)
    s12n = np.sqrt(1.0 - c12 * c12)
    # random orientation: axis a (of p1) isotropic, p2 at angle acos(c12) and random azimuth
    a = _iso(sq.size, rng)
    ref = np.where(np.abs(a[:, 2:3]) < 0.9, np.array([0.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0]))
    b = np.cross(a, ref)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    c = np.cross(a, b)
    psi = 2.0 * math.pi * rng.random(sq.size)
    perp = np.cos(psi)[:, None] * b + np.sin(psi)[:, None] * c
    v1 = p1[:, None] * a
    v2 = p2[:, None] * (c12[:, None] * a + s12n[:, None] * perp)
    v3 = -(v1 + v2)
    e3 = sq - e1 - e2
    return (
        np.concatenate([e1[:, None], v1], axis=1),
        np.concatenate([e2[:, None], v2], axis=1),
        np.concatenate([e3[:, None], v3], axis=1),
    )


def _a1_sample_factory(m_same: float, m_odd: float) -> Callable[..., tuple[tuple[F64, ...], F64]]:
    """Sampler of tau- -> nu (pi pi)_same + pi_odd with the KS a1 current (pions 1, 2 alike)."""

    def sample(k: int, g: np.random.Generator) -> tuple[tuple[F64, ...], F64]:
        lo, hi = (2 * m_same + m_odd) ** 2, M_TAU**2
        s, inv_g = _sample_s_bw(k, g, M_A1, G_A1, lo, hi)
        sq = np.sqrt(s)
        lo13, hi13 = (m_same + m_odd) ** 2, (sq - m_same) ** 2
        s13 = lo13 + (hi13 - lo13) * g.random(k)
        s23 = lo13 + (hi13 - lo13) * g.random(k)
        area = (hi13 - lo13) ** 2
        q1, q2, q3 = _three_body(sq, m_same, m_same, m_odd, s13, s23, g)
        inside = np.isfinite(q3[:, 0]) & _in_dalitz(sq, m_same, m_same, m_odd, s13, s23)
        d = _iso(k, g)
        qn = (M_TAU**2 - s) / (2.0 * M_TAU)
        nu = np.concatenate([qn[:, None], -qn[:, None] * d], axis=1)
        x = np.concatenate([(M_TAU - qn)[:, None], qn[:, None] * d], axis=1)
        q1, q2, q3 = (_boost(v, x) for v in (q1, q2, q3))
        big_q = q1 + q2 + q3
        qq = _dot(big_q, big_q)
        v1 = (q1 - q3) - big_q * (_dot(big_q, q1 - q3) / qq)[:, None]
        v2 = (q2 - q3) - big_q * (_dot(big_q, q2 - q3) / qq)[:, None]
        j = _bw_a1(s)[:, None] * (
            _bw_rho(s13, m_same, m_odd)[:, None] * v1 + _bw_rho(s23, m_same, m_odd)[:, None] * v2
        )
        h, t0 = polarimeter_from_current(j, nu)
        h = np.where(inside[:, None], h, 0.0)
        # phase space: q_nu (tau frame) x Dalitz density 1/s (flat in s13, s23) x box area
        w = np.where(inside, t0 * qn / s * area * inv_g, 0.0)
        return (nu, q1, q2, q3, h), w

    return sample


def _in_dalitz(sq: F64, m1: float, m2: float, m3: float, s13: F64, s23: F64) -> NDArray[np.bool_]:
    """Points (s13, s23) inside the Dalitz region of M = sq -> 1 2 3."""
    s = sq * sq
    s12 = s + m1 * m1 + m2 * m2 + m3 * m3 - s13 - s23
    e1 = (s + m1 * m1 - s23) / (2.0 * sq)
    e2 = (s + m2 * m2 - s13) / (2.0 * sq)
    p1sq = e1 * e1 - m1 * m1
    p2sq = e2 * e2 - m2 * m2
    ok = (p1sq >= 0) & (p2sq >= 0)
    c12 = (e1 * e2 - 0.5 * (s12 - m1 * m1 - m2 * m2)) / np.sqrt(np.maximum(p1sq * p2sq, 1e-300))
    return ok & (np.abs(c12) <= 1.0) & (sq - e1 - e2 >= m3)


def _genbod(n: int, rng: np.random.Generator, masses: Sequence[float]) -> F64:
    """n-body phase space at rest in the tau (GENBOD, F. James, CERN 68-15), (n, k, 4)."""
    masses = list(masses)
    k = len(masses)
    total = sum(masses)
    t = M_TAU - total
    # guaranteed GENBOD bound: each momentum at its largest parent and smallest daughter mass
    w_max = 1.0
    for i in range(1, k):
        hi = sum(masses[: i + 1]) + t
        lo_d = sum(masses[:i])
        w_max *= float(_pstar(np.float64(hi), lo_d, masses[i]))

    def sample(m: int, g: np.random.Generator) -> tuple[tuple[F64, ...], F64]:
        r = np.sort(g.random((m, k - 2)), axis=1)
        cum = np.cumsum(masses)
        inv = [np.full(m, masses[0])]
        for i in range(1, k - 1):
            inv.append(cum[i] + r[:, i - 1] * t)
        inv.append(np.full(m, M_TAU))
        w = np.ones(m)
        for i in range(1, k):
            w = w * _pstar(inv[i], inv[i - 1], masses[i])
        return tuple(inv), w

    inv = _accept_reject(sample, n, rng, w_max)
    # build from the innermost pair outwards: system i = particles 0..i
    p: list[F64] = []
    for i in range(1, k):
        pm = _pstar(inv[i], inv[i - 1], masses[i])
        d = _iso(n, rng)
        sys_prev = np.concatenate([np.sqrt(pm * pm + inv[i - 1] ** 2)[:, None], pm[:, None] * d], 1)
        new = np.concatenate([np.sqrt(pm * pm + masses[i] ** 2)[:, None], -pm[:, None] * d], 1)
        # the first system is particle 0 itself (it may be massless: no rest frame to boost from)
        p = [sys_prev] if i == 1 else [_boost(v, sys_prev) for v in p]
        p.append(new)
    return np.stack(p, axis=1)


def _pi0_to_photons(p4: F64, pdg: Sequence[int], rng: np.random.Generator) -> F64:
    """Replace each pi0 by two photons (isotropic in its rest frame), the photons last."""
    keep = [i for i, c in enumerate(pdg) if c != 111]
    pi0 = [i for i, c in enumerate(pdg) if c == 111]
    out = [p4[:, i] for i in keep]
    n = p4.shape[0]
    for i in pi0:
        g1, g2 = _two_body(np.full(n, M_PI0), 0.0, 0.0, _iso(n, rng))
        out.append(_boost(g1, p4[:, i]))
        out.append(_boost(g2, p4[:, i]))
    return np.stack(out, axis=1)


@cache
def _hadronic_w_max(model: str, key: tuple[float, float]) -> float:
    """Largest accept-reject weight of a hadronic model, from a seeded scan (x 1.3 safety)."""
    g = np.random.default_rng(12345)
    fn = _rho_sample if model == "rho" else _a1_sample_factory(*key)
    best = 0.0
    for _ in range(4):
        _, w = fn(200_000, g)
        best = max(best, float(np.max(w)))
    return 1.3 * best


def _decay_mode(mode: DecayMode, n: int, rng: np.random.Generator) -> tuple[F64, F64]:
    """Rest-frame decay products (out_pdg order) and polarimeter of n tau- decays of a mode."""
    if mode.model == "lepton":
        p4, h = _lepton(n, rng, M_ELECTRON if mode.products[1] == 11 else M_MUON)
    elif mode.model == "two_body":
        p4, h = _two_body_mode(n, rng, _MASS[abs(mode.products[1])])
    elif mode.model == "rho":
        nu, pi, pi0, h = _accept_reject(_rho_sample, n, rng, _hadronic_w_max("rho", (0.0, 0.0)))
        p4 = np.stack([nu, pi, pi0], axis=1)
    elif mode.model == "a1":
        # masses of the alike pair (pi- pi- or pi0 pi0) and of the odd pion (pi+ or pi-)
        key = (M_PI, M_PI) if mode.name == "a1_3prong" else (M_PI0, M_PI)
        fn = _a1_sample_factory(*key)
        nu, q1, q2, q3, h = _accept_reject(fn, n, rng, _hadronic_w_max("a1", key))
        # products (16, -211, -211, 211) or (16, 111, 111, -211): the alike pair first
        p4 = np.stack([nu, q1, q2, q3], axis=1)
    else:
        p4 = _genbod(n, rng, [_MASS[abs(c)] for c in mode.products])
        h = np.zeros((n, 3))
    if 111 in mode.products:
        p4 = _pi0_to_photons(p4, mode.products, rng)
    return p4, h


class RestFrameDecays(NamedTuple):
    """Decays of a batch of taus in their rest frames (padded to a common multiplicity)."""

    pdg: NDArray[np.int64]
    """(n, k) PDG codes of the final-state particles; 0 marks padding."""
    p4: F64
    """(n, k, 4) four-momenta in the tau rest frame (the frame's axes are the caller's)."""
    h: F64
    """(n, 3) polarimeter vectors (decay rate ``1 + h . s`` for rest-frame spin ``s``)."""


def max_multiplicity(codes: Sequence[int]) -> int:
    """Largest number of final-state particles among the given mode codes."""
    return max(len(_BY_CODE[int(c)].out_pdg) for c in codes)


def decay_rest(
    codes: NDArray[np.integer], charge: int, rng: np.random.Generator, k: int | None = None
) -> RestFrameDecays:
    """Decay taus of the given modes at rest, unpolarised, with their polarimeter vectors.

    Parameters
    ----------
    codes
        (n,) mode codes (:data:`MODE_CODES`) per tau.
    charge
        -1 for tau-, +1 for tau+ (the CP image: momenta reversed, particles conjugated, same h).
    rng
        Random generator.
    k
        Padded multiplicity (default: the largest of the modes present).

    Returns
    -------
    RestFrameDecays
    """
    codes = np.asarray(codes)
    n = codes.size
    present = [int(c) for c in np.unique(codes)]
    if k is None:
        k = max_multiplicity(present) if present else 1
    pdg = np.zeros((n, k), dtype=np.int64)
    p4 = np.zeros((n, k, 4))
    h = np.zeros((n, 3))
    for c in present:
        mode = _BY_CODE[c]
        idx = np.flatnonzero(codes == c)
        q, hv = _decay_mode(mode, idx.size, rng)
        kk = q.shape[1]
        out = np.array(mode.out_pdg, dtype=np.int64)
        if charge > 0:
            out = np.where(np.isin(np.abs(out), (22, 111, 130)), out, -out)
            q = q.copy()
            q[..., 1:] *= -1.0
        pdg[idx, :kk] = out
        p4[idx, :kk] = q
        h[idx] = hv
    return RestFrameDecays(pdg, p4, h)


def helicity_axes(direction: F64) -> F64:
    """(n, 3, 3) orthonormal axes (x', y', z') with z' along ``direction`` (n, 3).

    ``x'`` lies in the plane of z' and the beam axis (``x' = (cos th cos ph, cos th sin ph,
    -sin th)``), ``y' = z' x x'`` ... right-handed: ``x' x y' = z'``.
    """
    d = direction / np.linalg.norm(direction, axis=-1, keepdims=True)
    ct = d[..., 2]
    st = np.hypot(d[..., 0], d[..., 1])
    safe = st > 1e-300
    cp = np.where(safe, d[..., 0] / np.where(safe, st, 1.0), 1.0)
    sp = np.where(safe, d[..., 1] / np.where(safe, st, 1.0), 0.0)
    x = np.stack([ct * cp, ct * sp, -st], axis=-1)
    y = np.stack([-sp, cp, np.zeros_like(cp)], axis=-1)
    return np.stack([x, y, d], axis=-2)


def rest_to_frame(p4_rest: F64, tau_p4: F64, axes: F64) -> F64:
    """Take rest-frame momenta into the frame in which the tau has four-momentum ``tau_p4``.

    Parameters
    ----------
    p4_rest
        (n, k, 4) momenta in the tau rest frame, components along ``axes``.
    tau_p4
        (n, 4) tau four-momentum in the target frame.
    axes
        (n, 3, 3) rows: the rest frame's x', y', z' axes expressed in the target frame (the rest
        frame is reached from the target frame by a rotation-free boost).
    """
    e = tau_p4[:, 0]
    pv = tau_p4[:, 1:]
    p_primed = (axes * pv[:, None, :]).sum(axis=2)  # tau momentum on the primed axes
    moved = _boost(p4_rest, np.concatenate([e[:, None], p_primed], axis=1))
    out = np.empty_like(moved)
    out[..., 0] = moved[..., 0]
    out[..., 1:] = (
        moved[..., 1:2] * axes[:, None, 0]
        + moved[..., 2:3] * axes[:, None, 1]
        + moved[..., 3:4] * axes[:, None, 2]
    )
    return out


def spin_weight(r: F64, h_minus: F64, h_plus: F64) -> F64:
    """The correlation weight ``w = sum_ab R_ab h-_a h+_b / R_00`` (``h_0 = 1``), per event.

    Parameters
    ----------
    r
        (n, 4, 4) spin-correlation matrix, first index tau-, second tau+.
    h_minus, h_plus
        (n, 3) polarimeter vectors in the respective rest frames (axes as used for ``r``).
    """
    n = h_minus.shape[0]
    hm = np.concatenate([np.ones((n, 1)), h_minus], axis=1)
    hp = np.concatenate([np.ones((n, 1)), h_plus], axis=1)
    return np.einsum("na,nab,nb->n", hm, r, hp) / r[:, 0, 0]


def _rotate_toward(dec: RestFrameDecays, pol: F64, rng: np.random.Generator) -> None:
    """Re-orient unpolarised decays in place so that they follow ``1 + h . pol``, exactly.

    The unpolarised decay distribution is invariant under rotations of the whole configuration
    and ``h`` rotates with it, so the configuration's shape keeps its unpolarised distribution and
    only the direction of ``h`` must follow ``1 + |h||pol| cos(alpha)`` around ``pol`` (with the
    roll about ``h`` uniform, which the unpolarised generators already provide): a rigid rotation
    of each configuration taking ``h`` to a direction drawn from that law is an exact,
    rejection-free equivalent of the accept-reject with weight ``1 + h . pol``.
    """
    hm = np.sqrt(np.einsum("ni,ni->n", dec.h, dec.h))
    pm = np.sqrt(np.einsum("ni,ni->n", pol, pol))
    kappa = hm * pm
    STATS["spin_weight_violations"] += int(np.count_nonzero(kappa > 1.0 + 1e-9))
    idx = np.flatnonzero(kappa > 1e-12)
    if idx.size == 0:
        return
    kap = np.minimum(kappa[idx], 1.0)
    u = rng.random(idx.size)
    # inverse CDF of (1 + kappa c)/2 on [-1, 1]
    disc = np.maximum(1.0 - 2.0 * kap * (1.0 - 0.5 * kap - 2.0 * u), 0.0)
    c = np.clip((np.sqrt(disc) - 1.0) / kap, -1.0, 1.0)
    sn = np.sqrt(1.0 - c * c)
    phi = 2.0 * math.pi * rng.random(idx.size)
    pz = pol[idx] / pm[idx, None]
    ax = helicity_axes(pz)  # any orthonormal frame around pol
    target = (
        c[:, None] * pz
        + (sn * np.cos(phi))[:, None] * ax[:, 0]
        + (sn * np.sin(phi))[:, None] * ax[:, 1]
    )
    hh = dec.h[idx] / hm[idx, None]
    k = np.cross(hh, target)
    sin_t = np.linalg.norm(k, axis=1)
    cos_t = np.einsum("ni,ni->n", hh, target)
    # anti-parallel (measure zero): any axis perpendicular to h
    perp = helicity_axes(hh)[:, 0]
    k = np.where((sin_t < 1e-12)[:, None], perp, k / np.maximum(sin_t, 1e-300)[:, None])
    v = dec.p4[idx, :, 1:]
    kk = k[:, None, :]
    kv = np.einsum("nki,ni->nk", v, k)[..., None]
    rot = (
        v * cos_t[:, None, None]
        + np.cross(kk, v) * sin_t[:, None, None]
        + kk * kv * (1.0 - cos_t)[:, None, None]
    )
    dec.p4[idx, :, 1:] = rot
    dec.h[idx] = target * hm[idx, None]


def decay_pair(
    tau_minus: F64,
    tau_plus: F64,
    axes_minus: F64,
    axes_plus: F64,
    r: F64 | None,
    codes_minus: NDArray[np.integer],
    codes_plus: NDArray[np.integer],
    rng: np.random.Generator,
    w_max: float = 2.0,
    k: int | None = None,
    method: str = "rotate",
) -> tuple[RestFrameDecays, RestFrameDecays, F64, F64, int]:
    """Spin-correlated decays of tau pairs of fixed production kinematics.

    Two exact methods:

    - ``"reject"`` (TAUOLA/KORALB): decay both taus unpolarised and accept with ``w / w_max``,
      regenerating the decays of the rejected events (production and modes kept): exact because
      the unpolarised average of ``h`` vanishes in every mode, so the decays average ``w`` to 1
      at every production point.
    - ``"rotate"`` (default, about twice faster): the same joint density sampled without
      rejection: the tau- decay follows its marginal ``1 + h- . P-`` with ``P-_i = R_i0/R_00``
      and the tau+ its conditional ``1 + h+ . P+`` with
      ``P+_j = (R_0j + sum_i h-_i R_ij) / (R_00 + sum_i R_i0 h-_i)``, each imposed by a rigid
      rotation of the unpolarised configuration (:func:`_rotate_toward`).

    Parameters
    ----------
    tau_minus, tau_plus
        (n, 4) tau four-momenta in the target frame.
    axes_minus, axes_plus
        (n, 3, 3) rest-frame axes (see :func:`rest_to_frame`) in which ``r`` is expressed.
    r
        (n, 4, 4) spin-correlation matrix, or None for independent unpolarised decays.
    codes_minus, codes_plus
        (n,) mode codes.
    rng
        Random generator.
    w_max
        Maximum of ``w`` (2 for any physical ``R``); weights above it are counted in
        :data:`STATS` (``spin_weight_violations``, also |P| > 1 for ``"rotate"``).
    k
        Padded multiplicity per tau.
    method
        ``"rotate"`` or ``"reject"``.

    Returns
    -------
    minus, plus, p4_minus, p4_plus, trials
        Rest-frame decays, the products' momenta in the target frame (n, k, 4) each, and the
        total number of decay pairs generated.
    """
    n = tau_minus.shape[0]
    if k is None:
        k = max_multiplicity(np.unique(np.concatenate([codes_minus, codes_plus])).tolist())
    if method not in ("rotate", "reject"):
        raise ValueError(f"method must be 'rotate' or 'reject', got {method!r}")
    dm = decay_rest(codes_minus, -1, rng, k)
    dp = decay_rest(codes_plus, +1, rng, k)
    trials = n
    if r is not None and method == "rotate":
        r00 = r[:, 0, 0]
        p_minus = r[:, 1:, 0] / r00[:, None]
        if np.any(p_minus != 0.0):
            _rotate_toward(dm, p_minus, rng)
        num = r[:, 0, 1:] + np.einsum("ni,nij->nj", dm.h, r[:, 1:, 1:])
        den = r00 + np.einsum("ni,ni->n", dm.h, r[:, 1:, 0])
        _rotate_toward(dp, num / den[:, None], rng)
    elif r is not None:
        todo = np.arange(n)
        while todo.size:
            w = spin_weight(r[todo], dm.h[todo], dp.h[todo])
            STATS["spin_weight_violations"] += int(np.count_nonzero(w > w_max * (1 + 1e-12)))
            rej = todo[rng.random(todo.size) * w_max >= w]
            if rej.size:
                a = decay_rest(codes_minus[rej], -1, rng, k)
                b = decay_rest(codes_plus[rej], +1, rng, k)
                for dst, src in ((dm, a), (dp, b)):
                    dst.pdg[rej] = src.pdg
                    dst.p4[rej] = src.p4
                    dst.h[rej] = src.h
                trials += rej.size
            todo = rej
    pm = rest_to_frame(dm.p4, tau_minus, axes_minus)
    pp = rest_to_frame(dp.p4, tau_plus, axes_plus)
    return dm, dp, pm, pp, trials
