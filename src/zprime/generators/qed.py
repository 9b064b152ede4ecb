"""zprime's own tree-level QED generators for the Standard Model samples Pythia 8 lacks.

Three background and control samples of the PRL (PRL 130, 231801 (2023)), which used
BabaYaga@NLO for ee(gamma) and PHOKHARA 9.1 for pi pi(gamma):

``ee``
    Bhabha scattering e+e- -> e+e-, s- and t-channel photon exchange with their interference,
    the exact massless tree-level cross section, convolved with collinear initial-state radiation
    from the Kuraev-Fadin structure function of :mod:`zprime.generators.isr` on both beams.
``eegamma``
    Radiative Bhabha scattering e+e- -> e+e- gamma at tree level with one hard photon at a wide
    angle: the exact massless matrix element of Berends et al. (CALKUL), Nucl. Phys. B206 (1982)
    61, with generation cuts that keep away from the soft and collinear singularities.
``pipi``
    e+e- -> pi+ pi- gamma with the photon from initial-state radiation: the leading order of
    PHOKHARA (G. Rodrigo, H. Czyz, J. H. Kuhn, M. Szopa, Eur. Phys. J. C 24 (2002) 71), pion
    current ``F_pi(Q^2) (q+ - q-)^mu``, the leptonic tensor with the electron mass kept, and the
    Kuhn-Santamaria pion form factor.

Each sample has a chunk function with the interface of :mod:`zprime.generators.chunk`
(``<name>_chunk(settings, n_generate, seed) -> ChunkResult``). The events are *weighted*: each
kept event carries ``w_i = f(x_i) J(x_i) / n_generate`` in fb, ``f`` the differential cross
section and ``J`` the Jacobian of the phase-space map, so that the sum of the weights over the
chunk is the Monte Carlo estimate of the cross section inside the generation cuts (points
outside the cuts get ``w = 0`` and are dropped). The phase-space maps flatten the known
singular factors analytically (t-channel pole, 1/E_gamma, collinear peaks, the rho
Breit-Wigner) and a :class:`vegas.AdaptiveMap`, trained once per setting with a fixed seed
and cached, adapts to what is left. Events are in the Belle II lab frame (7 GeV e- along +z
on 4 GeV e+; :func:`zprime.physics.kinematics.cm_to_lab`).

Generator options (``settings["options"]``, defaults in :data:`DEFAULT_SETTINGS`, documented in
:data:`OPTION_DOCS` and ``docs/qed.md``) are the generation cuts and the coupling; unknown
options raise :class:`~zprime.errors.ConfigError`. ``eegamma`` can also be generated as a
stratified sample (``enhance_fraction`` and the ``enhance_*`` ranges): a fixed fraction of each
chunk's points inside a stratum of the cuts (by default the radiative Bhabhas of the PRL's
photon-veto measurement, a hard photon in the backward barrel and both electrons in the
two-track trigger's acceptance), the others outside it; the cross section and every
distribution are unchanged, the weights inside the stratum lighter (``docs/control.md``).

What is left out (see ``docs/qed.md``): Z exchange (a (s/m_Z^2)-suppressed effect, below 1%
at 10.58 GeV), vacuum polarisation (alpha does not run), virtual corrections, final-state
radiation in ``ee`` and ``pipi``, more than one hard photon, the rho-omega interference.

Length: three small tree-level generators (ee, ee gamma, pi pi gamma) that share one integration,
ISR and chunk machinery.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import awkward as ak
import numpy as np
import vegas
from numpy.typing import ArrayLike, NDArray

from zprime.errors import ConfigError, InputError
from zprime.generators.chunk import ChunkResult, track_filter
from zprime.generators.isr import isr_kinematics, sample_energy_loss
from zprime.io.events import make_particles
from zprime.physics.constants import ALPHA_0, GEV2_TO_FB, M_ELECTRON, M_PION, SQRT_S
from zprime.physics.kinematics import boost_z, cm_to_lab

__all__ = [
    "DEFAULT_SETTINGS",
    "KS_PARAMETERS",
    "OPTION_DOCS",
    "bhabha_cross_section",
    "bhabha_dsigma_dcos",
    "describe",
    "ee_chunk",
    "eegamma_chunk",
    "eegamma_me2",
    "pion_form_factor",
    "pipi_born_cross_section",
    "pipi_chunk",
    "pipi_isr_me2",
    "resolve_options",
]

Array = NDArray[np.float64]

# --------------------------------------------------------------------------------------------
# options (generation cuts) of the three samples

_ALPHA_INV_0 = 1.0 / ALPHA_0

_OPTIONS: dict[str, dict[str, tuple[Any, str]]] = {
    "ee": {
        "theta_min_deg": (
            20.0,
            "minimum c.m. polar angle of both the e- and the e+, deg (20-160 deg in the c.m. "
            "contains the CDC acceptance, 17-150 deg in the lab = 22.5-157.0 deg in the c.m.; the "
            "Belle II Physics Book quotes Bhabha for 10-170 deg)",
        ),
        "theta_max_deg": (160.0, "maximum c.m. polar angle of both leptons, deg"),
        "isr": (
            True,
            "collinear initial-state radiation on both beams (zprime.generators.isr structure "
            "function); "
            "false: Born Bhabha at fixed sqrt(s)",
        ),
        "m_ee_min_gev": (
            1.0,
            "minimum e+e- invariant mass after ISR, sqrt(s_hat), GeV (keeps away from the x -> 0 "
            "end of the structure function, where it is not meant to be used)",
        ),
        "alpha_inverse": (_ALPHA_INV_0, "1/alpha of the hard process (Thomson limit, no running)"),
    },
    "eegamma": {
        "e_gamma_min_gev": (
            0.5,
            "minimum c.m. photon energy, GeV (the PRL's recoil pT(c.m.) > 0.5 GeV needs at least "
            "this much when the photon is the recoil)",
        ),
        "theta_gamma_min_deg": (10.0, "minimum c.m. polar angle of the photon, deg"),
        "theta_gamma_max_deg": (170.0, "maximum c.m. polar angle of the photon, deg"),
        "theta_min_deg": (20.0, "minimum c.m. polar angle of both leptons, deg (as ee)"),
        "theta_max_deg": (160.0, "maximum c.m. polar angle of both leptons, deg"),
        "angle_gamma_lepton_min_deg": (
            5.0,
            "minimum c.m. opening angle between the photon and each lepton, deg (the collinear "
            "final-state singularity)",
        ),
        "m_ee_min_gev": (
            1.0,
            "minimum e+e- invariant mass, GeV (the 1/s' pole of a nearly real photon converting "
            "to a collinear e+e- pair, where the massless matrix element fails)",
        ),
        "alpha_inverse": (_ALPHA_INV_0, "1/alpha (Thomson limit, no running)"),
        "enhance_fraction": (
            0.0,
            "fraction of the phase-space points generated inside the enhanced stratum (the "
            "enhance_* ranges below), the rest outside it: a stratified sample with the same "
            "cross section and lighter weights in the stratum (0: no stratum, plain sampling)",
        ),
        "enhance_theta_gamma_min_deg": (
            100.0,
            "enhanced stratum: minimum c.m. photon polar angle, deg (the photon-veto "
            "measurement's backward barrel, lab 90-128.7 deg, is c.m. 105.8-140.1 deg)",
        ),
        "enhance_theta_gamma_max_deg": (
            145.0,
            "enhanced stratum: maximum c.m. photon polar angle, deg",
        ),
        "enhance_theta_min_deg": (
            44.0,
            "enhanced stratum: minimum c.m. polar angle of both leptons, deg (the two-track "
            "trigger's lab 37-120 deg is c.m. 47.8-132.8 deg)",
        ),
        "enhance_theta_max_deg": (
            136.0,
            "enhanced stratum: maximum c.m. polar angle of both leptons, deg",
        ),
        "enhance_e_gamma_min_gev": (
            1.0,
            "enhanced stratum: minimum c.m. photon energy, GeV (softer photons leave the two "
            "electrons back to back, where the two-track line's Bhabha veto rejects the event)",
        ),
    },
    "pipi": {
        "theta_min_deg": (20.0, "minimum c.m. polar angle of both pions, deg (as ee)"),
        "theta_max_deg": (160.0, "maximum c.m. polar angle of both pions, deg"),
        "theta_gamma_min_deg": (
            5.0,
            "minimum c.m. polar angle of the ISR photon, deg (0 includes the collinear peak, "
            "which the electron mass regulates; a photon below 5 deg cannot give the PRL's "
            "recoil pT(c.m.) > 0.5 GeV)",
        ),
        "theta_gamma_max_deg": (175.0, "maximum c.m. polar angle of the ISR photon, deg"),
        "e_gamma_min_gev": (
            0.5,
            "minimum c.m. photon energy, GeV; sets the largest pi pi mass, "
            "m^2 <= s - 2 sqrt(s) E_min",
        ),
        "m_pipi_min_gev": (2.0 * M_PION, "minimum pi+ pi- invariant mass, GeV (threshold)"),
        "alpha_inverse": (_ALPHA_INV_0, "1/alpha (Thomson limit, no running)"),
    },
}

OPTION_DOCS: dict[str, dict[str, str]] = {
    name: {key: doc for key, (_, doc) in opts.items()} for name, opts in _OPTIONS.items()
}
"""Documentation of every generator option, by sample and option name."""

_DESCRIPTIONS = {
    "ee": "Bhabha e+e- -> e+e- (gamma): tree-level s+t photon exchange, collinear ISR "
    "(structure function), zprime.generators.qed",
    "eegamma": "radiative Bhabha e+e- -> e+e- gamma, one hard wide-angle photon, exact massless "
    "tree level (CALKUL), zprime.generators.qed",
    "pipi": "e+e- -> pi+ pi- gamma, photon from ISR at tree level (PHOKHARA LO), Kuhn-Santamaria "
    "pion form factor, zprime.generators.qed",
}

DEFAULT_SETTINGS: dict[str, dict[str, Any]] = {
    name: {
        "description": _DESCRIPTIONS[name],
        "generator": f"zprime.generators.qed:{name}_chunk",
        "normalisation": "generator",
        "xsec_source": "zprime.generators.qed tree-level Monte Carlo integral inside the "
        "generation cuts "
        "(options)",
        "events": {"ee": 1_000_000, "eegamma": 500_000, "pipi": 500_000}[name],
        "chunk_size": 250_000,
        "options": {key: value for key, (value, _) in opts.items()},
    }
    for name, opts in _OPTIONS.items()
}
"""Default settings of the samples ``ee``, ``eegamma`` and ``pipi``, in the shape of a
``backgrounds.samples.<name>`` entry of the configuration (:class:`zprime.config.
BackgroundSampleConfig`); ``options`` holds the generation cuts documented in
:data:`OPTION_DOCS`. The filter is the configuration's default generator-level filter."""


def resolve_options(name: str, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The generator options of sample ``name``: the defaults updated by ``settings['options']``.

    Raises
    ------
    ConfigError
        For an unknown sample, an unknown option or a value of the wrong kind or range.
    """
    if name not in _OPTIONS:
        raise ConfigError(
            f"zprime.generators.qed: unknown sample '{name}' (known: {', '.join(_OPTIONS)})"
        )
    given = dict((settings or {}).get("options") or {})
    opts = {key: value for key, (value, _) in _OPTIONS[name].items()}
    for key, value in given.items():
        if key not in opts:
            known = ", ".join(opts)
            raise ConfigError(f"qed sample '{name}': unknown option '{key}' (known: {known})")
        if isinstance(opts[key], bool):
            if not isinstance(value, bool):
                raise ConfigError(f"qed sample '{name}': option '{key}' must be true or false")
        else:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"qed sample '{name}': option '{key}' must be a number")
            value = float(value)
        opts[key] = value
    _check_options(name, opts)
    return opts


def _check_options(name: str, o: Mapping[str, Any]) -> None:
    def fail(msg: str) -> None:
        raise ConfigError(f"qed sample '{name}': {msg}")

    for lo, hi in (
        ("theta_min_deg", "theta_max_deg"),
        ("theta_gamma_min_deg", "theta_gamma_max_deg"),
    ):
        if lo in o and not 0.0 <= o[lo] < o[hi] <= 180.0:
            fail(f"options '{lo}'/'{hi}' must satisfy 0 <= {lo} < {hi} <= 180")
    if name in ("ee", "eegamma") and not 0.0 < o["theta_min_deg"] < o["theta_max_deg"] < 180.0:
        fail("options 'theta_min_deg'/'theta_max_deg' must lie strictly inside (0, 180) deg")
    if name == "eegamma" and not 0.0 < o["theta_gamma_min_deg"] < o["theta_gamma_max_deg"] < 180:
        fail("options 'theta_gamma_min_deg'/'theta_gamma_max_deg' must lie inside (0, 180) deg")
    if not o["alpha_inverse"] > 1.0:
        fail("option 'alpha_inverse' must be > 1")
    if name in ("ee", "eegamma") and not 0.0 < o["m_ee_min_gev"] < SQRT_S - 1.0:
        fail(f"option 'm_ee_min_gev' must be in (0, {SQRT_S - 1.0:.3f})")
    if name in ("eegamma", "pipi") and not o["e_gamma_min_gev"] > 0.0:
        fail("option 'e_gamma_min_gev' must be positive")
    if name == "eegamma":
        e_max = (SQRT_S**2 - o["m_ee_min_gev"] ** 2) / (2.0 * SQRT_S)
        if not o["e_gamma_min_gev"] < e_max:
            fail(f"option 'e_gamma_min_gev' must be below {e_max:.3f} GeV (set by m_ee_min_gev)")
    if name == "eegamma" and not 0.0 < o["angle_gamma_lepton_min_deg"] < 90.0:
        fail("option 'angle_gamma_lepton_min_deg' must be in (0, 90)")
    if name == "eegamma" and not 0.0 <= o["enhance_fraction"] < 1.0:
        fail("option 'enhance_fraction' must be in [0, 1)")
    if name == "eegamma" and o["enhance_fraction"] > 0.0:
        # the stratum must lie inside the generation cuts: it and the rest then tile them
        for lo, hi, outer_lo, outer_hi in (
            (
                "enhance_theta_gamma_min_deg",
                "enhance_theta_gamma_max_deg",
                "theta_gamma_min_deg",
                "theta_gamma_max_deg",
            ),
            ("enhance_theta_min_deg", "enhance_theta_max_deg", "theta_min_deg", "theta_max_deg"),
        ):
            if not o[outer_lo] <= o[lo] < o[hi] <= o[outer_hi]:
                fail(f"options '{lo}'/'{hi}' must satisfy {outer_lo} <= {lo} < {hi} <= {outer_hi}")
        e_max = (SQRT_S**2 - o["m_ee_min_gev"] ** 2) / (2.0 * SQRT_S)
        if not o["e_gamma_min_gev"] <= o["enhance_e_gamma_min_gev"] < e_max:
            fail(
                "option 'enhance_e_gamma_min_gev' must satisfy e_gamma_min_gev <= "
                f"enhance_e_gamma_min_gev < {e_max:.3f} GeV"
            )
    if name == "pipi":
        q2_max = SQRT_S**2 - 2.0 * SQRT_S * o["e_gamma_min_gev"]
        if not 2.0 * M_PION <= o["m_pipi_min_gev"] < math.sqrt(q2_max):
            fail("option 'm_pipi_min_gev' must lie between 2 m_pi and the largest mass")


# --------------------------------------------------------------------------------------------
# matrix elements and cross sections


def bhabha_dsigma_dcos(cos_theta: ArrayLike, s: ArrayLike, alpha: float = ALPHA_0) -> Array:
    """Massless tree-level Bhabha cross section dsigma/dcos(theta) in GeV^-2.

    .. math::

        \\frac{d\\sigma}{d\\cos\\theta} = \\frac{\\pi\\alpha^2}{s}
        \\frac{s^4 + t^4 + u^4}{s^2 t^2}
        = \\frac{\\pi\\alpha^2}{s}\\left[\\frac{s^2+u^2}{t^2} + \\frac{2u^2}{st}
        + \\frac{t^2+u^2}{s^2}\\right],

    with ``t = -s(1 - cos)/2``, ``u = -s(1 + cos)/2``, theta the e- scattering angle: t- and
    s-channel photon exchange with their interference (e.g. Peskin & Schroeder, problem 5.2;
    the azimuth is integrated).
    """
    c = np.asarray(cos_theta, dtype=np.float64)
    return _bhabha_from_a(0.5 * (1.0 - c), np.asarray(s, dtype=np.float64), alpha)


def _bhabha_from_a(a: Array, s: Array, alpha: float) -> Array:
    """dsigma/dcos with a = (1 - cos)/2 = -t/s given directly (precise near the pole)."""
    b = 1.0 - a
    return math.pi * alpha**2 / s * (1.0 + a**4 + b**4) / (a * a)


def bhabha_cross_section(
    s: float, theta_min: float, theta_max: float, alpha: float = ALPHA_0
) -> float:
    """Born Bhabha cross section in GeV^-2 for an e- scattering angle in [theta_min, theta_max].

    The analytic integral of :func:`bhabha_dsigma_dcos` (angles in radians): with
    ``a = (1 - cos)/2``, ``(1 + a^4 + (1-a)^4)/a^2 = 2/a^2 - 4/a + 6 - 4a + 2a^2``.
    """

    def prim(a: float) -> float:
        return -2.0 / a - 4.0 * math.log(a) + 6.0 * a - 2.0 * a * a + 2.0 / 3.0 * a**3

    a_lo = 0.5 * (1.0 - math.cos(theta_min))
    a_hi = 0.5 * (1.0 - math.cos(theta_max))
    return math.pi * alpha**2 / s * 2.0 * (prim(a_hi) - prim(a_lo))


def _mdot(a: Array, b: Array) -> Array:
    return (
        a[..., 0] * b[..., 0]
        - a[..., 1] * b[..., 1]
        - a[..., 2] * b[..., 2]
        - a[..., 3] * b[..., 3]
    )


def eegamma_me2(
    p_electron: ArrayLike,
    p_positron: ArrayLike,
    q_electron: ArrayLike,
    q_positron: ArrayLike,
    k: ArrayLike,
    alpha: float = ALPHA_0,
) -> Array:
    """Spin-averaged |M|^2 (GeV^-2) of e-(p-) e+(p+) -> e-(q-) e+(q+) gamma(k), massless tree level.

    The compact exact result of Berends, De Causmaecker, Gastmans, Kleiss, Troost and Wu
    (CALKUL), Nucl. Phys. B206 (1982) 61, for all eight diagrams (s and t channel, emission from
    every leg, all interferences):

    .. math::

        \\overline{|M|^2} = 2 e^6 \\,
        \\frac{s s'(s^2 + s'^2) + t t'(t^2 + t'^2) + u u'(u^2 + u'^2)}{s s' t t'}\\, W,

    with ``s = (p+ + p-)^2``, ``s' = (q+ + q-)^2``, ``t = (p+ - q+)^2``, ``t' = (p- - q-)^2``,
    ``u = (p+ - q-)^2``, ``u' = (p- - q+)^2`` and the eikonal factor

    .. math::

        W = \\frac{p_+ p_-}{(p_+k)(p_-k)} + \\frac{q_+ q_-}{(q_+k)(q_-k)}
          + \\frac{p_+ q_+}{(p_+k)(q_+k)} + \\frac{p_- q_-}{(p_-k)(q_-k)}
          - \\frac{p_+ q_-}{(p_+k)(q_-k)} - \\frac{p_- q_+}{(p_-k)(q_+k)},

    ``2 W = -J^2`` with the classical current ``J = sum_i eta_i p_i/(p_i k)``. In the soft
    limit the first factor tends to twice the Bhabha ``(s^4+t^4+u^4)/(s^2 t^2)`` and the result
    to Bhabha times the eikonal factor ``2 e^2 W``. The normalisation and signs are checked in
    ``tests/generators/test_qed.py`` against the eight Feynman diagrams evaluated with explicit
    Dirac
    matrices (:mod:`zprime.physics.dirac`). Invariants are formed as ``2 p_i p_j``, the massless
    convention, so physical (massive) momenta may be passed.
    """
    pm = np.asarray(p_electron, dtype=np.float64)
    pp = np.asarray(p_positron, dtype=np.float64)
    qm = np.asarray(q_electron, dtype=np.float64)
    qp = np.asarray(q_positron, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    d_pp_pm = _mdot(pp, pm)
    d_qp_qm = _mdot(qp, qm)
    d_pp_qp = _mdot(pp, qp)
    d_pm_qm = _mdot(pm, qm)
    d_pp_qm = _mdot(pp, qm)
    d_pm_qp = _mdot(pm, qp)
    s, s1 = 2.0 * d_pp_pm, 2.0 * d_qp_qm
    t, t1 = -2.0 * d_pp_qp, -2.0 * d_pm_qm
    u, u1 = -2.0 * d_pp_qm, -2.0 * d_pm_qp
    kpp, kpm, kqp, kqm = _mdot(pp, k), _mdot(pm, k), _mdot(qp, k), _mdot(qm, k)
    x = (s * s1 * (s * s + s1 * s1) + t * t1 * (t * t + t1 * t1) + u * u1 * (u * u + u1 * u1)) / (
        s * s1 * t * t1
    )
    w = (
        d_pp_pm / (kpp * kpm)
        + d_qp_qm / (kqp * kqm)
        + d_pp_qp / (kpp * kqp)
        + d_pm_qm / (kpm * kqm)
        - d_pp_qm / (kpp * kqm)
        - d_pm_qp / (kpm * kqp)
    )
    e2 = 4.0 * math.pi * alpha
    return 2.0 * e2**3 * x * w


KS_PARAMETERS: dict[str, float] = {
    "m_rho": 0.773,
    "gamma_rho": 0.145,
    "m_rho1": 1.370,
    "gamma_rho1": 0.510,
    "beta": -0.145,
}
"""Kuhn-Santamaria pion form factor (rho + rho(1450), GeV): J. H. Kuhn and A. Santamaria,
Z. Phys. C 48 (1990) 445, with the values of their fit as used in TAUOLA (S. Jadach, Z. Was,
R. Decker, J. H. Kuhn, Comput. Phys. Commun. 76 (1993) 361, function FPIKM)."""


def _bw_pwave(q2: Array, mass: float, width: float) -> NDArray[np.complex128]:
    """Breit-Wigner m^2/(m^2 - q2 - i sqrt(q2) Gamma(q2)), Gamma(q2) = Gamma (m^2/q2)(p/p_m)^3."""
    p = np.sqrt(np.maximum(0.25 * q2 - M_PION**2, 0.0))
    p_m = math.sqrt(0.25 * mass**2 - M_PION**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        sqrt_gamma = np.where(q2 > 0.0, width * mass**2 / np.sqrt(np.abs(q2)) * (p / p_m) ** 3, 0.0)
    return mass**2 / (mass**2 - q2 - 1j * sqrt_gamma)


def pion_form_factor(q2: ArrayLike) -> NDArray[np.complex128]:
    """Pion electromagnetic form factor F_pi(q^2) (time-like), Kuhn-Santamaria model.

    ``F = [BW_rho + beta BW_rho'] / (1 + beta)``, normalised to F(0) = 1, with P-wave
    energy-dependent widths; parameters in :data:`KS_PARAMETERS`. The rho-omega interference
    is not included.
    """
    q2 = np.asarray(q2, dtype=np.float64)
    p = KS_PARAMETERS
    bw0 = _bw_pwave(q2, p["m_rho"], p["gamma_rho"])
    bw1 = _bw_pwave(q2, p["m_rho1"], p["gamma_rho1"])
    return (bw0 + p["beta"] * bw1) / (1.0 + p["beta"])


def pipi_born_cross_section(s: ArrayLike, alpha: float = ALPHA_0) -> Array:
    """Born sigma(e+e- -> pi+ pi-) = pi alpha^2 beta^3 |F_pi(s)|^2 / (3 s) in GeV^-2.

    Massless electrons, ``beta = sqrt(1 - 4 m_pi^2 / s)``; zero below threshold.
    """
    s = np.asarray(s, dtype=np.float64)
    beta2 = np.maximum(1.0 - 4.0 * M_PION**2 / s, 0.0)
    return math.pi * alpha**2 * beta2**1.5 * np.abs(pion_form_factor(s)) ** 2 / (3.0 * s)


def _isr_tensor(
    p1k: Array, p2k: Array, q2: Array, jp1: Array, jp2: Array, jj: Array, m: float
) -> Array:
    """-g_{nu nu'} Tr[(p2slash - m) A^nu (p1slash + m) Abar^nu'] for LO ISR, contracted with J.

    ``A^nu = Jslash S(p1 - k) gamma^nu / D1 + gamma^nu S(k - p2) Jslash / D2`` (one photon
    radiated by the e- or the e+, the virtual photon of momentum Q = p1 + p2 - k coupled to a
    conserved current J, J.Q = 0). Traced with FORM (docs/qed.md), checked against explicit
    Dirac matrices in tests/generators/test_qed.py.
    """
    inv1 = 1.0 / p1k
    inv2 = 1.0 / p2k
    massless = -4.0 * jj * (p2k * inv1 + p1k * inv2) - 4.0 * q2 * jj * (inv1 + inv2)
    massless = massless - (4.0 * q2 * (jp1 * jp1 + jp2 * jp2) + 2.0 * q2 * q2 * jj) * inv1 * inv2
    mass = 8.0 * (jp2 * inv1 - jp1 * inv2) ** 2 + 2.0 * q2 * jj * (inv1 + inv2) ** 2
    return massless + m * m * mass


def pipi_isr_me2(
    p_electron: ArrayLike,
    p_positron: ArrayLike,
    k: ArrayLike,
    q_plus: ArrayLike,
    q_minus: ArrayLike,
    alpha: float = ALPHA_0,
    m_e: float = M_ELECTRON,
) -> Array:
    """Spin-averaged |M|^2 (GeV^-2) of e-(p1) e+(p2) -> gamma(k) pi+(q+) pi-(q-), ISR only.

    ``|M|^2 = (1/4) e^6 |F_pi(Q^2)|^2 / Q^4 * L_{mu nu} J^mu J^nu`` with the pion current
    ``J = q+ - q-``, ``Q = q+ + q-`` and the leading-order leptonic tensor with the electron
    mass kept (the LO of PHOKHARA, Rodrigo et al., Eur. Phys. J. C 24 (2002) 71).
    """
    p1 = np.asarray(p_electron, dtype=np.float64)
    p2 = np.asarray(p_positron, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    qp = np.asarray(q_plus, dtype=np.float64)
    qm = np.asarray(q_minus, dtype=np.float64)
    j = qp - qm
    q = qp + qm
    q2 = _mdot(q, q)
    t = _isr_tensor(_mdot(p1, k), _mdot(p2, k), q2, _mdot(j, p1), _mdot(j, p2), _mdot(j, j), m_e)
    e2 = 4.0 * math.pi * alpha
    return 0.25 * e2**3 * np.abs(pion_form_factor(q2)) ** 2 / (q2 * q2) * t


# --------------------------------------------------------------------------------------------
# kinematics helpers


def _polar(p: Array) -> Array:
    return np.arctan2(np.hypot(p[..., 1], p[..., 2]), p[..., 3])


def _photon_and_pair(
    q2: Array,
    cos_g: Array,
    sin_g: Array,
    phi_g: Array,
    cos_d: Array,
    sin_d: Array,
    phi_d: Array,
    m_d: float,
) -> tuple[Array, Array, Array]:
    """c.m. four-momenta of a photon and a pair of mass sqrt(q2) decaying to two mass-m_d particles.

    The photon has polar angle (cos_g, sin_g) and azimuth phi_g about the beam; the first pair
    particle has, in the pair rest frame, polar angle (cos_d, sin_d) about the photon direction
    and azimuth phi_d about it, measured from the plane of the beam and the photon.
    """
    sqrt_s = SQRT_S
    omega = (sqrt_s**2 - q2) / (2.0 * sqrt_s)
    mass = np.sqrt(q2)
    p_star = np.sqrt(np.maximum(0.25 * q2 - m_d * m_d, 0.0))
    n = q2.shape[0]
    a = np.empty((n, 4))
    a[:, 0] = 0.5 * mass
    a[:, 1] = p_star * sin_d * np.cos(phi_d)
    a[:, 2] = p_star * sin_d * np.sin(phi_d)
    a[:, 3] = p_star * cos_d
    b = a.copy()
    b[:, 1:] *= -1.0
    # the pair moves along -k_hat with |p| = omega, E = sqrt(s) - omega; (gamma, gamma*beta)
    # taken from these directly to stay precise for a light pair
    g = (sqrt_s - omega) / mass
    gb = omega / mass
    for v in (a, b):
        e, pz = v[:, 0].copy(), v[:, 3].copy()
        v[:, 0] = g * e - gb * pz
        v[:, 3] = g * pz - gb * e
    k = np.zeros((n, 4))
    k[:, 0] = omega
    k[:, 3] = omega
    cp, sp = np.cos(phi_g), np.sin(phi_g)
    out = []
    for v in (k, a, b):
        x = v[:, 1] * cos_g + v[:, 3] * sin_g
        z = -v[:, 1] * sin_g + v[:, 3] * cos_g
        y = v[:, 2]
        r = np.empty_like(v)
        r[:, 0] = v[:, 0]
        r[:, 1] = x * cp - y * sp
        r[:, 2] = x * sp + y * cp
        r[:, 3] = z
        out.append(r)
    return out[0], out[1], out[2]


def _photon_angle(
    r: Array, c_lo: float, c_hi: float, beta: float
) -> tuple[Array, Array, Array, Array, Array]:
    """Map r in [0, 1] to cos(theta) in [c_lo, c_hi] flat in atanh(beta cos).

    Flattens the ISR/collinear peak 1/(1 - beta^2 cos^2). Returns cos, sin, dcos/dr and the
    precise ``1 - beta cos`` and ``1 + beta cos``.
    """
    y_lo, y_hi = math.atanh(beta * c_lo), math.atanh(beta * c_hi)
    y = y_lo + r * (y_hi - y_lo)
    th = np.tanh(y)
    c = np.clip(th / beta, -1.0, 1.0)
    sn = np.sqrt(np.maximum((1.0 - c) * (1.0 + c), 0.0))
    jac = (y_hi - y_lo) / (beta * np.cosh(y) ** 2)
    one_minus = 2.0 / (1.0 + np.exp(2.0 * y))
    one_plus = 2.0 / (1.0 + np.exp(-2.0 * y))
    return c, sn, jac, one_minus, one_plus


def _in_range(theta: Array, lo_deg: float, hi_deg: float) -> NDArray[np.bool_]:
    return (theta >= math.radians(lo_deg)) & (theta <= math.radians(hi_deg))


class _Point(NamedTuple):
    """What a kernel returns for a batch of phase-space points."""

    f: Array
    """differential cross section times the Jacobian of the analytic maps, fb (0 outside cuts)"""
    p4: Array
    """(n, k, 4) c.m. four-momenta of the final state"""
    truth: dict[str, Array]
    """optional scalar truth columns"""


# --------------------------------------------------------------------------------------------
# kernels: x in [0, 1]^d (vegas variables) and phi uniform in [0, 2 pi) -> cross section


def _ee_kernel(x: Array, u: Array, o: Mapping[str, Any]) -> _Point:
    """Bhabha with collinear ISR. Vegas x = (u1, u2, r): ISR of each beam and the scattering
    angle; u = (phi,)."""
    phi = 2.0 * math.pi * u[:, 0]
    s = SQRT_S**2
    alpha = 1.0 / o["alpha_inverse"]
    n = x.shape[0]
    if o["isr"]:
        v1, w1 = sample_energy_loss(x[:, 0], s)
        v2, w2 = sample_energy_loss(x[:, 1], s)
    else:
        v1 = v2 = np.zeros(n)
        w1 = w2 = np.ones(n)
    kin = isr_kinematics(v1, v2, SQRT_S)
    s_hat = kin.s_hat
    beta = kin.beta_z
    # Range of the hard-frame angle that puts both leptons inside [theta_min, theta_max] in the
    # c.m. frame: tan(theta_cm/2) = kb tan(theta*/2), kb = sqrt((1 - beta)/(1 + beta)), and the
    # positron leaves at pi - theta*.
    kb = np.sqrt((1.0 - beta) / (1.0 + beta))
    t_lo = math.tan(0.5 * math.radians(o["theta_min_deg"]))
    t_hi = math.tan(0.5 * math.radians(o["theta_max_deg"]))
    lo = np.maximum(t_lo / kb, kb / t_hi)
    hi = np.minimum(t_hi / kb, kb / t_lo)
    ok = (lo < hi) & (s_hat >= o["m_ee_min_gev"] ** 2)
    lo = np.where(ok, lo, 0.5)
    hi = np.where(ok, hi, 1.0)
    # y = 1/(1 - cos) = 1/(2a) flattens the t-channel pole 1/a^2; tan(theta/2) = T gives
    # y = (1 + T^2)/(2 T^2)
    y_far = (1.0 + hi * hi) / (2.0 * hi * hi)
    y_near = (1.0 + lo * lo) / (2.0 * lo * lo)
    y = y_far + x[:, 2] * (y_near - y_far)
    a = 0.5 / y  # (1 - cos)/2
    c = 1.0 - 2.0 * a
    dc_dr = (y_near - y_far) / (y * y)
    f = np.where(ok, w1 * w2 * _bhabha_from_a(a, s_hat, alpha) * dc_dr, 0.0) * GEV2_TO_FB
    # momenta in the hard frame, boosted to the c.m. frame
    e = 0.5 * np.sqrt(s_hat)
    p = np.sqrt(np.maximum(e * e - M_ELECTRON**2, 0.0))
    sn = 2.0 * np.sqrt(a * (1.0 - a))
    p4 = np.empty((n, 4, 4))
    p4[:, 0, 0] = e
    p4[:, 0, 1] = p * sn * np.cos(phi)
    p4[:, 0, 2] = p * sn * np.sin(phi)
    p4[:, 0, 3] = p * c
    p4[:, 1, 0] = e
    p4[:, 1, 1:] = -p4[:, 0, 1:]
    p4[:, :2] = boost_z(p4[:, :2], beta[:, None])
    p4[:, 2] = kin.photon_electron
    p4[:, 3] = kin.photon_positron
    return _Point(f, p4, {"sqrt_s_hat": np.sqrt(s_hat)})


def _boost(p: Array, gb: Array, g: Array) -> Array:
    """Boost four-momenta p (n, 4) by the velocity with gamma*beta vector gb (n, 3), gamma g (n,).

    (gamma, gamma*beta) are passed directly so that the boost stays precise for fast systems.
    """
    gbn = np.linalg.norm(gb, axis=-1)
    nhat = gb / gbn[:, None]
    pn = np.sum(p[:, 1:] * nhat, axis=-1)
    out = np.empty_like(p)
    out[:, 0] = g * p[:, 0] + gbn * pn
    out[:, 1:] = p[:, 1:] + ((g - 1.0) * pn + gbn * p[:, 0])[:, None] * nhat
    return out


def _unit(v: Array) -> Array:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _direction_about(axis: Array, c: Array, phi: Array) -> Array:
    """Unit vectors at polar cos ``c`` and azimuth ``phi`` about the unit vectors ``axis``."""
    ref = np.where(np.abs(axis[:, :1]) < 0.9, np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]))
    e1 = _unit(np.cross(ref, axis))
    e2 = np.cross(axis, e1)
    sn = np.sqrt(np.maximum((1.0 - c) * (1.0 + c), 0.0))
    return c[:, None] * axis + (sn * np.cos(phi))[:, None] * e1 + (sn * np.sin(phi))[:, None] * e2


def _eegamma_kernel(x: Array, u: Array, o: Mapping[str, Any]) -> _Point:
    """Radiative Bhabha. Vegas x = (r_E, r_gamma); u = (phi_gamma, channel, r_cos, r_phi).

    The photon energy is flat in log E (1/E soft spectrum, up to the m_ee_min limit), its
    polar angle flat in atanh(cos) (collinear-with-beam peaks). The lepton direction in the
    e+e- pair rest frame is drawn from a mixture of three channels with equal probability:
    (A) about the photon direction, flat in ln tan(theta/2) inside the range that keeps both
    leptons angle_gamma_lepton_min away from the photon (the final-state collinear peaks);
    (B) about the e- beam direction seen in the pair frame and (C) about the reversed e+ beam
    direction, both flat in 1/(1 - cos) (the t-channel poles of the e- and the e+). The weight
    is f / (sum of the three densities / 3) (the balance heuristic).
    """
    sqrt_s = SQRT_S
    s = sqrt_s**2
    alpha = 1.0 / o["alpha_inverse"]
    n = x.shape[0]
    e_min = o["e_gamma_min_gev"]
    e_max = (s - o["m_ee_min_gev"] ** 2) / (2.0 * sqrt_s)
    log_r = math.log(e_max / e_min)
    omega = e_min * np.exp(x[:, 0] * log_r)
    d_omega = omega * log_r
    q2 = s - 2.0 * sqrt_s * omega
    mass = np.sqrt(q2)
    c_hi = math.cos(math.radians(o["theta_gamma_min_deg"]))
    c_lo = math.cos(math.radians(o["theta_gamma_max_deg"]))
    cg, sg, d_cg, _, _ = _photon_angle(x[:, 1], c_lo, c_hi, 1.0)
    phi_g = 2.0 * math.pi * u[:, 0]
    khat = np.stack([sg * np.cos(phi_g), sg * np.sin(phi_g), cg], axis=-1)
    k = np.concatenate([omega[:, None], omega[:, None] * khat], axis=-1)
    # the pair moves along -khat; boosts c.m. <-> pair frame with (gamma, gamma*beta)
    g_q = (sqrt_s - omega) / mass
    gb_q = -(omega / mass)[:, None] * khat
    e_beam = 0.5 * sqrt_s
    p_beam = math.sqrt(e_beam**2 - M_ELECTRON**2)
    pm = np.zeros((n, 4))
    pm[:, 0], pm[:, 3] = e_beam, p_beam
    pp = np.zeros((n, 4))
    pp[:, 0], pp[:, 3] = e_beam, -p_beam
    axis_b = _unit(_boost(pm, -gb_q, g_q)[:, 1:])
    axis_c = -_unit(_boost(pp, -gb_q, g_q)[:, 1:])
    # channel A range: tan(theta_cm/2) = sqrt((1 + b)/(1 - b)) tan(theta*/2), b the pair speed
    bq = omega / (sqrt_s - omega)
    t_sep = math.tan(0.5 * math.radians(o["angle_gamma_lepton_min_deg"]))
    z_max = -np.log(t_sep * np.sqrt((1.0 - bq) / (1.0 + bq)))
    # channels B, C: 1 - cos about the beam axes is at least (1 - cos theta_min)(1 - b)/(1 + b)
    # in the pair frame (aberration bound) when the lepton is theta_min from the beam in the c.m.
    a_min = (1.0 - math.cos(math.radians(o["theta_min_deg"]))) * (1.0 - bq) / (1.0 + bq)
    y_lo, y_hi = 0.5, 1.0 / a_min
    channel = np.minimum((3.0 * u[:, 1]).astype(np.int64), 2)
    z = (2.0 * u[:, 2] - 1.0) * z_max
    y = y_lo + u[:, 2] * (y_hi - y_lo)
    c_sample = np.where(channel == 0, -np.tanh(z), 1.0 - 1.0 / y)
    axis = np.where(
        (channel == 0)[:, None], khat, np.where((channel == 1)[:, None], axis_b, axis_c)
    )
    nstar = _direction_about(axis, c_sample, 2.0 * math.pi * u[:, 3])
    # densities of the three channels per unit solid angle at this direction
    c_a = np.clip(np.sum(nstar * khat, axis=-1), -1.0, 1.0)
    sin2_a = np.maximum((1.0 - c_a) * (1.0 + c_a), 1e-300)
    z_a = np.arctanh(np.clip(-c_a, -1.0 + 1e-16, 1.0 - 1e-16))
    g_a = np.where(np.abs(z_a) <= z_max, 1.0 / (4.0 * math.pi * z_max * sin2_a), 0.0)
    dens = g_a
    for ax in (axis_b, axis_c):
        one_minus_c = np.maximum(1.0 - np.sum(nstar * ax, axis=-1), 1e-300)
        inside = 1.0 / one_minus_c <= y_hi
        dens = dens + np.where(inside, 1.0 / (2.0 * math.pi * (y_hi - y_lo) * one_minus_c**2), 0.0)
    dens = dens / 3.0
    p_star = np.sqrt(np.maximum(0.25 * q2 - M_ELECTRON**2, 0.0))
    qm_star = np.concatenate([0.5 * mass[:, None], p_star[:, None] * nstar], axis=-1)
    qp_star = np.concatenate([0.5 * mass[:, None], -p_star[:, None] * nstar], axis=-1)
    qm = _boost(qm_star, gb_q, g_q)
    qp = _boost(qp_star, gb_q, g_q)
    me2 = eegamma_me2(pm, pp, qm, qp, k, alpha)
    beta_e = 2.0 * p_star / mass
    # dPhi3 = [omega/(16 pi^2 sqrt s)] dOmega_g [2 sqrt(s) domega/(2 pi)] [beta/(32 pi^2)] dOmega*
    dphi3 = (
        omega
        / (16.0 * math.pi**2 * sqrt_s)
        * (2.0 * math.pi * d_cg)
        * (2.0 * sqrt_s * d_omega / (2.0 * math.pi))
        * beta_e
        / (32.0 * math.pi**2)
        / dens
    )
    sep = math.radians(o["angle_gamma_lepton_min_deg"])
    ok = (
        _in_range(_polar(qm), o["theta_min_deg"], o["theta_max_deg"])
        & _in_range(_polar(qp), o["theta_min_deg"], o["theta_max_deg"])
        & (_opening(qm, k) >= sep)
        & (_opening(qp, k) >= sep)
    )
    if o.get(_EXCLUDE_STRATUM):
        # the rest of a stratified sample: the enhanced stratum is generated separately
        ok &= ~_in_enhanced_stratum(omega, k, qm, qp, o)
    f = np.where(ok, me2 * dphi3 / (2.0 * s), 0.0) * GEV2_TO_FB
    return _Point(f, np.stack([qm, qp, k], axis=1), {})


_EXCLUDE_STRATUM = "_exclude_enhanced_stratum"
"""Internal option key: the kernel leaves out the enhanced stratum (set by :func:`_strata`)."""


def _in_enhanced_stratum(omega: Array, k: Array, qm: Array, qp: Array, o: Mapping[str, Any]) -> Any:
    """True where an e+e- gamma point (c.m. momenta) lies in the ``enhance_*`` stratum: the
    kernel with the stratum's options as generation cuts covers exactly these points."""
    lo, hi = o["enhance_theta_min_deg"], o["enhance_theta_max_deg"]
    return (
        (omega >= o["enhance_e_gamma_min_gev"])
        & _in_range(_polar(k), o["enhance_theta_gamma_min_deg"], o["enhance_theta_gamma_max_deg"])
        & _in_range(_polar(qm), lo, hi)
        & _in_range(_polar(qp), lo, hi)
    )


def _opening(a: Array, b: Array) -> Array:
    """Opening angle between the three-momenta of a and b (radians)."""
    cross = np.linalg.norm(np.cross(a[:, 1:], b[:, 1:]), axis=-1)
    return np.arctan2(cross, np.sum(a[:, 1:] * b[:, 1:], axis=-1))


def _pipi_kernel(x: Array, u: Array, o: Mapping[str, Any]) -> _Point:
    """e+e- -> pi+ pi- gamma (ISR). Vegas x = (r_Q2, r_gamma, r_cos*, r_phi*); u = phi_gamma."""
    phi = 2.0 * math.pi * u[:, 0]
    sqrt_s = SQRT_S
    s = sqrt_s**2
    alpha = 1.0 / o["alpha_inverse"]
    # Q^2 flat in the rho Breit-Wigner phase (the resonance peak)
    mr, gr = KS_PARAMETERS["m_rho"], KS_PARAMETERS["gamma_rho"]
    q2_lo = o["m_pipi_min_gev"] ** 2
    q2_hi = s - 2.0 * sqrt_s * o["e_gamma_min_gev"]
    psi_lo = math.atan((q2_lo - mr * mr) / (mr * gr))
    psi_hi = math.atan((q2_hi - mr * mr) / (mr * gr))
    psi = psi_lo + x[:, 0] * (psi_hi - psi_lo)
    q2 = mr * mr + mr * gr * np.tan(psi)
    d_q2 = (psi_hi - psi_lo) * ((q2 - mr * mr) ** 2 + (mr * gr) ** 2) / (mr * gr)
    # photon polar angle flat in atanh(beta_e cos): the mass-regulated collinear peak
    e_beam = 0.5 * sqrt_s
    p_beam = math.sqrt(e_beam**2 - M_ELECTRON**2)
    beta_e = p_beam / e_beam
    c_hi = math.cos(math.radians(o["theta_gamma_min_deg"]))
    c_lo = math.cos(math.radians(o["theta_gamma_max_deg"]))
    cg, sg, d_cg, one_minus, one_plus = _photon_angle(x[:, 1], c_lo, c_hi, beta_e)
    cd = 2.0 * x[:, 2] - 1.0
    sd = np.sqrt(np.maximum((1.0 - cd) * (1.0 + cd), 0.0))
    phi_d = 2.0 * math.pi * x[:, 3]
    k, pip, pim = _photon_and_pair(q2, cg, sg, phi, cd, sd, phi_d, M_PION)
    omega = k[:, 0]
    # invariants with the beams (precise 1 -+ beta cos near the collinear peaks)
    p1k = omega * e_beam * one_minus
    p2k = omega * e_beam * one_plus
    j = pip - pim
    jp1 = j[:, 0] * e_beam - j[:, 3] * p_beam
    jp2 = j[:, 0] * e_beam + j[:, 3] * p_beam
    jj = _mdot(j, j)
    t = _isr_tensor(p1k, p2k, q2, jp1, jp2, jj, M_ELECTRON)
    e2 = 4.0 * math.pi * alpha
    me2 = 0.25 * e2**3 * np.abs(pion_form_factor(q2)) ** 2 / (q2 * q2) * t
    beta_pi = np.sqrt(np.maximum(1.0 - 4.0 * M_PION**2 / q2, 0.0))
    dphi3 = (
        omega
        / (16.0 * math.pi**2 * sqrt_s)
        * (2.0 * math.pi * d_cg)
        * (d_q2 / (2.0 * math.pi))
        * beta_pi
        / (32.0 * math.pi**2)
        * (2.0 * 2.0 * math.pi)
    )
    flux = 2.0 * s * beta_e
    ok = _in_range(_polar(pip), o["theta_min_deg"], o["theta_max_deg"]) & _in_range(
        _polar(pim), o["theta_min_deg"], o["theta_max_deg"]
    )
    f = np.where(ok, me2 * dphi3 / flux, 0.0) * GEV2_TO_FB
    return _Point(f, np.stack([pip, pim, k], axis=1), {"m_pipi": np.sqrt(q2)})


_Kernel = Callable[[Array, Array, Mapping[str, Any]], _Point]
_KERNELS: dict[str, tuple[_Kernel, int, int, tuple[int, ...]]] = {
    # name: (kernel, vegas dimensions, further uniform numbers, PDG codes of the particles)
    "ee": (_ee_kernel, 3, 1, (11, -11, 22, 22)),
    "eegamma": (_eegamma_kernel, 2, 4, (11, -11, 22)),
    "pipi": (_pipi_kernel, 4, 1, (211, -211, 22)),
}

# --------------------------------------------------------------------------------------------
# vegas adaptation and event generation

_TRAIN_SEED = 20230231  # fixed: the map depends only on the options, never on the chunk seed
_TRAIN_ITERATIONS = 10
_TRAIN_POINTS = 20_000
_N_INCREMENTS = 100
_BATCH = 100_000


@functools.lru_cache(maxsize=32)
def _trained_map(name: str, frozen: tuple[tuple[str, Any], ...]) -> vegas.AdaptiveMap:
    """A vegas map adapted to sample ``name`` with options ``frozen`` (cached per process)."""
    kernel, dim, n_extra, _ = _KERNELS[name]
    opts = dict(frozen)
    rng = np.random.default_rng(_TRAIN_SEED)
    amap = vegas.AdaptiveMap([[0.0, 1.0]] * dim, ninc=_N_INCREMENTS)
    for _ in range(_TRAIN_ITERATIONS):
        y = rng.random((_TRAIN_POINTS, dim))
        xs = np.empty_like(y)
        jac = np.empty(_TRAIN_POINTS)
        amap.map(y, xs, jac)
        f = kernel(xs, rng.random((_TRAIN_POINTS, n_extra)), opts).f * jac
        amap.add_training_data(y, f * f)
        amap.adapt(alpha=0.5)
    return amap


def _strata(
    name: str, opts: Mapping[str, Any], n_generate: int, label: str
) -> list[tuple[dict[str, Any], int]]:
    """(kernel options, phase-space points) of each stratum of a chunk.

    One stratum (the generation cuts) unless ``eegamma``'s ``enhance_fraction`` is set; then
    the enhanced stratum (the kernel with the ``enhance_*`` ranges as its cuts) gets that
    fraction of the points and the rest of the cuts (the kernel with the stratum left out) the
    others. The two tile the generation cuts, and each stratum's weights are normalised to its
    own points, so the sum of the weights is the cross section inside the cuts whatever the
    fraction (stratified sampling), with weights lighter by the ratio of point densities inside
    the stratum.
    """
    fraction = float(opts.get("enhance_fraction", 0.0)) if name == "eegamma" else 0.0
    if fraction <= 0.0:
        return [(dict(opts), n_generate)]
    if n_generate < 2:
        raise InputError(f"qed sample '{label}': a stratified chunk needs at least 2 points")
    n_stratum = min(max(round(fraction * n_generate), 1), n_generate - 1)
    stratum = {
        **opts,
        "theta_gamma_min_deg": opts["enhance_theta_gamma_min_deg"],
        "theta_gamma_max_deg": opts["enhance_theta_gamma_max_deg"],
        "theta_min_deg": opts["enhance_theta_min_deg"],
        "theta_max_deg": opts["enhance_theta_max_deg"],
        "e_gamma_min_gev": opts["enhance_e_gamma_min_gev"],
    }
    return [({**opts, _EXCLUDE_STRATUM: True}, n_generate - n_stratum), (stratum, n_stratum)]


def _generate(
    name: str, settings: Mapping[str, Any] | None, n_generate: int, seed: int
) -> ChunkResult:
    settings = dict(settings or {})
    label = settings.get("name", name)
    if n_generate <= 0:
        raise InputError(f"qed sample '{label}': n_generate must be positive, got {n_generate}")
    opts = resolve_options(name, settings)
    kernel, dim, n_extra, pdg = _KERNELS[name]
    rng = np.random.default_rng(seed)
    filt = settings.get("filter")
    sigma = 0.0
    var = 0.0
    parts: list[ak.Array] = []
    first = 0  # event index of the stratum's first point: indices stay in [0, n_generate)
    for s_opts, n in _strata(name, opts, n_generate, label):
        amap = _trained_map(name, tuple(sorted(s_opts.items())))
        sum_w = 0.0
        sum_w2 = 0.0
        done = 0
        while done < n:
            m = min(_BATCH, n - done)
            y = rng.random((m, dim))
            extra = rng.random((m, n_extra))
            xs = np.empty_like(y)
            jac = np.empty(m)
            amap.map(y, xs, jac)
            point = kernel(xs, extra, s_opts)
            w = point.f * jac / n
            sum_w += float(w.sum())
            sum_w2 += float(np.sum(w * w))
            index = np.flatnonzero(w > 0.0)
            p4_lab = cm_to_lab(point.p4[index])
            pdg_arr = np.broadcast_to(np.asarray(pdg, dtype=np.int32), (len(index), len(pdg)))
            particles = make_particles(pdg_arr, p4_lab)
            if filt is not None:
                mask = track_filter(particles, filt)
                index, particles = index[mask], particles[mask]
            columns: dict[str, Any] = {
                "event": (first + done + index).astype(np.int64),
                "weight": w[index],
                "particles": particles,
            }
            for key, value in point.truth.items():
                columns[key] = value[index]
            parts.append(ak.zip(columns, depth_limit=1))
            done += m
        first += n
        sigma += sum_w
        # the strata are independent: their variances add
        var += max(n * sum_w2 - sum_w * sum_w, 0.0) / (n - 1) if n > 1 else sum_w * sum_w
    events = ak.concatenate(parts) if len(parts) > 1 else parts[0]
    err = math.sqrt(var)
    if settings.get("normalisation", "generator") == "reference":
        ref = settings.get("xsec_ref_fb")
        if ref is None:
            raise ConfigError(f"qed sample '{label}': normalisation 'reference' needs xsec_ref_fb")
        if sigma > 0.0:
            events = ak.with_field(events, events["weight"] * (float(ref) / sigma), "weight")
    return ChunkResult(ak.to_packed(events), int(n_generate), sigma, err)


def ee_chunk(settings: Mapping[str, Any] | None, n_generate: int, seed: int) -> ChunkResult:
    """Generate one chunk of Bhabha events e+e- -> e+e- with collinear ISR (the chunk interface).

    Parameters
    ----------
    settings
        The sample's settings (:func:`zprime.generators.backgrounds.sample_settings`): ``options``
        (see
        :data:`OPTION_DOCS` ``['ee']``; missing ones take their defaults), ``filter`` (the
        generator-level track filter, none if absent), ``normalisation`` (``generator``, the
        default, or ``reference`` with ``xsec_ref_fb``). ``{}`` gives the defaults.
    n_generate
        Phase-space points to generate (before the generation cuts and the filter).
    seed
        Seed of :func:`numpy.random.default_rng`.

    Returns
    -------
    zprime.generators.chunk.ChunkResult
        Weighted events (particles e-, e+ and the two collinear ISR photons, lab frame; truth
        column ``sqrt_s_hat``) whose weights sum to the Monte Carlo estimate of the cross
        section in fb inside the cuts (and filter), ``n_generate``, that estimate over the cuts
        before the filter, and its statistical error.
    """
    return _generate("ee", settings, n_generate, seed)


def eegamma_chunk(settings: Mapping[str, Any] | None, n_generate: int, seed: int) -> ChunkResult:
    """Generate one chunk of radiative Bhabha events e+e- -> e+e- gamma (the chunk interface).

    Same parameters and result as :func:`ee_chunk`, options :data:`OPTION_DOCS` ``['eegamma']``;
    particles e-, e+, gamma.
    """
    return _generate("eegamma", settings, n_generate, seed)


def pipi_chunk(settings: Mapping[str, Any] | None, n_generate: int, seed: int) -> ChunkResult:
    """Generate one chunk of e+e- -> pi+ pi- gamma(ISR) events (the chunk interface).

    Same parameters and result as :func:`ee_chunk`, options :data:`OPTION_DOCS` ``['pipi']``;
    particles pi+, pi-, gamma, truth column ``m_pipi`` (GeV).
    """
    return _generate("pipi", settings, n_generate, seed)


def describe(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a qed sample's settings and describe its generator (the backgrounds hook).

    Raises
    ------
    ConfigError
        If the generator is not one of this module's chunk functions or an option is wrong.
    """
    target = str(settings.get("generator", ""))
    func = target.partition(":")[2]
    name = func.removesuffix("_chunk")
    if name not in _OPTIONS or not func.endswith("_chunk"):
        raise ConfigError(f"qed sample '{settings.get('name', '?')}': unknown generator '{target}'")
    opts = resolve_options(name, settings)
    return {
        "generator": f"zprime.generators.qed {name} (tree level, weighted, vegas "
        "{vegas.__version__})",
        "br_weight": 1.0,
        "qed_options": opts,
    }
