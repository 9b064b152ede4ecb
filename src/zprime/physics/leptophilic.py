"""Physics of three tau-tau resonances X in e+e- -> mu+ mu- X, X -> tau+ tau-: widths, B(X -> tau
tau), coupling <-> cross section, (g-2)_mu.

The three models of Belle II, PRL 131, 121802 (2023), arXiv:2306.12294 ([1]_; the 2022 PASCOS
talk names the theory references [2]_ and [4]_):

``"zprime"``
    The L_mu - L_tau gauge boson, coupling g' to the vector current of mu and tau (opposite signs)
    and to left-handed nu_mu, nu_tau. Widths from :mod:`zprime.physics.model` (the invisible-Z'
    analysis' module; reused, not copied).
``"scalar"``
    A leptophilic scalar S with L = -xi sum_l (m_l / v) S lbar l, l = e, mu, tau, v = 246.22 GeV:
    the low-energy model of the "leptonic Higgs portal", Batell, Lange, McKeen, Pospelov, Ritz,
    PRD 95, 075003 (2017), arXiv:1606.04943 [2]_ (the talk's ref. [1]).
``"alp"``
    An axion-like particle a with flavour-universal lepton couplings C_ee = C_mumu = C_tautau = C
    and no gauge-boson couplings, C_gammagamma = C_Zgamma = 0 [1]_, in the convention of Bauer,
    Neubert, Thamm, JHEP 12 (2017) 044, arXiv:1708.00443 [3]_, used by Bauer, Neubert, Renner,
    Schnubel, Thamm, arXiv:2110.10698 [4]_ (the talk's ref. [2]):
    L = sum_l (C_ll / 2) (d^mu a / Lambda) lbar gamma_mu gamma_5 l. The model's coupling is
    |C_ll| / Lambda, in GeV^-1 here (x 1e3 for TeV^-1).

Couplings of the muon vertex (what the generators need). The generators compute
sigma(e+e- -> mu+ mu- X) at unit vertex coupling: vector ``-i g' gamma^mu`` (g' = 1), scalar
``L = -y S mubar mu`` (y = 1), pseudoscalar ``L = -i y a mubar gamma_5 mu`` (y = 1). Then

* Z': y = g';
* S: y = xi m_mu / v;
* a: integrating the derivative coupling by parts and using the Dirac equation,
  d_mu (lbar gamma^mu gamma_5 l) = 2 i m_l lbar gamma_5 l, gives
  (C/2Lambda) d_mu a lbar gamma^mu gamma_5 l -> -i (C m_l / Lambda) a lbar gamma_5 l, so
  y = C_mumu m_mu / Lambda with the same sign as C. The two forms are related by the axial field
  redefinition l -> exp(i C a gamma_5 / 2 Lambda) l, which leaves the photon vertex invariant, so
  they give identical tree-level amplitudes also off shell (e+e- -> mu mu a); they differ only by
  the anomaly term, a one-loop effect (it is what makes B_1 below differ from the Yukawa-basis
  loop function).

So sigma(coupling) = y(coupling)^2 sigma(y = 1), and the searched quantity is
sigma x B(X -> tau tau).

Partial widths (tree level; beta_l = sqrt(1 - 4 m_l^2 / M^2), tau_l = 4 m_l^2 / M^2,
alpha = alpha(0) for on-shell photons):

* Z' -> l+ l-, nu nubar: :func:`zprime.physics.model.partial_widths`
  (g'^2 M/(12 pi)(1 + 2 m_l^2/M^2) beta_l; g'^2 M/(24 pi) per neutrino flavour). Z' -> gamma gamma
  is forbidden (Landau-Yang).
* S -> l+ l- = xi^2 m_l^2 M beta_l^3 / (8 pi v^2) (a CP-even Yukawa y_l = xi m_l/v:
  y_l^2 M beta^3 / (8 pi)) [2]_ [5]_.
* S -> gamma gamma = alpha^2 M^3 xi^2 / (256 pi^3 v^2) |sum_l A_1/2(tau_l)|^2, the Higgs
  formula G_F alpha^2 M^3 / (128 sqrt2 pi^3) |sum_f N_c Q_f^2 A_1/2^H|^2 [5]_ with only lepton
  loops and each Yukawa scaled by xi (G_F / sqrt2 = 1 / (2 v^2));
  A_1/2(tau) = 2 tau [1 + (1 - tau) f(tau)^2], -> 4/3 for a heavy lepton (tau -> inf), -> 0 for
  a light one.
* a -> l+ l- = |C_ll|^2 m_l^2 M beta_l / (8 pi Lambda^2) [3]_ (eq. for Gamma(a -> l+ l-)); the
  pseudoscalar Yukawa width y_l^2 M beta / (8 pi) with y_l = C m_l / Lambda.
* a -> gamma gamma = 4 pi alpha^2 M^3 |C_gammagamma^eff|^2 / Lambda^2 with
  C_gammagamma^eff = C_gammagamma + sum_f N_c^f Q_f^2 C_ff / (16 pi^2) B_1(tau_f) [3]_; here
  C_gammagamma = 0, so Gamma = alpha^2 M^3 (C/Lambda)^2 |sum_l B_1(tau_l)|^2 / (64 pi^3).
  B_1(tau) = 1 - tau f(tau)^2 -> 1 for a light lepton, -> -1/(3 tau) -> 0 for a heavy one.

with f(tau) = arcsin(1/sqrt(tau)) for tau >= 1 and pi/2 + (i/2) ln[(1 + sqrt(1 - tau)) /
(1 - sqrt(1 - tau))] for tau < 1 [3]_ (f^2 is the function f of the Higgs literature [5]_).

No hadronic modes: none of the three X couples to quarks or gluons at tree level, and a lepton
loop gives no X -> g g. (The Z' gets a loop-induced kinetic mixing eps ~ e g' ln(m_tau^2/m_mu^2)
/ (12 pi^2) ~ 0.014 g', hence Gamma(Z' -> e e, hadrons) / Gamma(Z' -> mu mu) ~ (e eps/g')^2 ~ 2e-5,
neglected as in :mod:`zprime.physics.model`.) S, a -> gamma gamma are kept although they are
<= 4e-4 of the total.

Every width is proportional to the square of the one coupling (g'^2, xi^2, (C/Lambda)^2): the
loop-induced gamma gamma amplitude is linear in the same xi or C because all leptons share it.
B(X -> tau tau) is therefore independent of the coupling, and the coupling limit from an upper
limit on sigma x B is exact: y_UL = sqrt(sigma_UL / (sigma_{y=1} B)).

(g-2)_mu at one loop, r = M^2 / m_mu^2 (Leveille 1978 [6]_; Jegerlehner & Nyffeler 2009 [7]_):

* Z': :func:`zprime.physics.model.delta_a_mu` (positive);
* S: Delta a_mu = y^2/(8 pi^2) int_0^1 dz (1-z)^2 (1+z) / ((1-z)^2 + r z) > 0,
  -> (y^2/8pi^2)(ln r - 7/6)/r for r >> 1 [7]_;
* a: Delta a_mu = -y^2/(8 pi^2) int_0^1 dz (1-z)^3 / ((1-z)^2 + r z) < 0, i.e.
  -(C_mumu m_mu / Lambda)^2 h_1(r) / (16 pi^2) with h_1 of [3]_; -> -(y^2/8pi^2)(ln r - 11/6)/r.

By default only the one-loop terms are included. Two-loop Barr-Zee diagrams (a photon and a
lepton loop; for the tau loop alpha/pi times (m_tau/m_mu)^2 times a logarithm) are not small
here: for S they are -50% (4 GeV) to -100% (10 GeV) of the one-loop term. ``two_loop=True``
adds them for S: alpha m_mu^2 xi^2 / (8 pi^3 v^2) sum_l f_S(m_l^2/M^2) (arXiv:1607.06292
eq. (53), photon part [10]_; f_S of hep-ph/0609168 eq. (71) [11]_). For the ALP the two-loop
term depends on whether the lepton couplings are derivative (C_gammagamma = 0 then means the
anomaly term is absent) or Yukawa-like, and is left out; its one-loop contribution has the
wrong sign, so it has no (g-2)_mu band (:func:`g2_band` returns ``None``). See
``docs/tautau_models.md`` for the sizes.

The (g-2)_mu band: Delta a_mu = (251 +- 59) x 10^-11 at +-2 sigma by default (Muon g-2, PRL 126,
141801 (2021) with the Theory Initiative's SM value [8]_; the value current when [1]_ was
written, and the one of :mod:`zprime.physics.model`). The 2023 update (249 +- 48) x 10^-11
(Muon g-2, PRL 131, 161802 (2023) [9]_) is :data:`G2_DELTA_A_MU_2023` / :data:`G2_SIGMA_A_MU_2023`.

Mass domains: widths, branching fractions and (g-2) for 2 m_tau < M < sqrt(s) = 10.58 GeV; the
analysis helpers (:func:`sigma_times_br`, :func:`coupling_limit`) for 3.6 <= M <= 10 GeV, the
search range of [1]_. Outside, or for an unknown model, a coupling <= 0 or a NaN, a one-line
:class:`zprime.errors.ConfigError` names the value. All functions broadcast over arrays; scalar
inputs give floats.

References
----------
.. [1] Belle II, "Search for a tau+tau- resonance in e+e- -> mu+mu-tau+tau- events with the
       Belle II experiment", PRL 131, 121802 (2023), arXiv:2306.12294.
.. [2] B. Batell, N. Lange, D. McKeen, M. Pospelov, A. Ritz, "Muon anomalous magnetic moment
       through the leptonic Higgs portal", PRD 95, 075003 (2017), arXiv:1606.04943.
.. [3] M. Bauer, M. Neubert, A. Thamm, "Collider probes of axion-like particles", JHEP 12 (2017)
       044, arXiv:1708.00443 (Lagrangian, Gamma(a -> l l), Gamma(a -> gamma gamma),
       C_gammagamma^eff with B_1, and the one-loop h_1 term of delta a_mu).
.. [4] M. Bauer, M. Neubert, S. Renner, M. Schnubel, A. Thamm, "Flavor probes of axion-like
       particles", arXiv:2110.10698 (JHEP 09 (2022) 056).
.. [5] A. Djouadi, "The anatomy of electroweak symmetry breaking I", Phys. Rept. 457 (2008) 1,
       arXiv:hep-ph/0503172 (Gamma(H -> f f), Gamma(H -> gamma gamma), A_1/2^H).
.. [6] J. P. Leveille, Nucl. Phys. B137 (1978) 63.
.. [7] F. Jegerlehner, A. Nyffeler, Phys. Rept. 477 (2009) 1, arXiv:0902.3360 (one-loop scalar
       and pseudoscalar exchange).
.. [8] Muon g-2 Collaboration, B. Abi et al., PRL 126, 141801 (2021); T. Aoyama et al. (Muon g-2
       Theory Initiative), Phys. Rept. 887 (2020) 1.
.. [9] Muon g-2 Collaboration, D. P. Aguillard et al., PRL 131, 161802 (2023), arXiv:2308.06230.
.. [10] A. Cherchiglia, P. Kneschke, D. Stoeckinger, H. Stoeckinger-Kim, "The muon magnetic
        moment in the 2HDM: complete two-loop result", JHEP 01 (2017) 007, arXiv:1607.06292.
.. [11] D. Stoeckinger, "The muon magnetic moment and supersymmetry", J. Phys. G 34 (2007) R45,
        arXiv:hep-ph/0609168.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import spence

from zprime.errors import ConfigError
from zprime.physics import model as _zp
from zprime.physics.constants import ALPHA_0, M_ELECTRON, M_MUON, M_TAU, SQRT_S, V_HIGGS

__all__ = [
    "ANALYSIS_MASS_RANGE",
    "CHANNELS",
    "COUPLING_NAMES",
    "COUPLING_UNITS",
    "G2_DELTA_A_MU_2021",
    "G2_DELTA_A_MU_2023",
    "G2_SIGMA_A_MU_2021",
    "G2_SIGMA_A_MU_2023",
    "GEV_INV_TO_TEV_INV",
    "LEPTON_MASSES",
    "MODELS",
    "WIDTH_MASS_RANGE",
    "SigmaUnit",
    "a_half_scalar",
    "b1_alp",
    "barr_zee_f_ps",
    "barr_zee_f_s",
    "branching_fractions",
    "branching_tautau",
    "check_analysis_mass",
    "check_model",
    "coupling_from_vertex",
    "coupling_limit",
    "delta_a_mu",
    "g2_band",
    "loop_f",
    "partial_widths",
    "sigma_times_br",
    "total_width",
    "vertex_coupling",
]

MODELS: tuple[str, ...] = ("zprime", "scalar", "alp")
"""The three X of the search: L_mu - L_tau Z', leptophilic scalar S, axion-like particle a."""

COUPLING_NAMES: dict[str, str] = {"zprime": "g'", "scalar": "xi", "alp": "|C_ll|/Lambda"}
"""The coupling each model's limit is quoted in."""
COUPLING_UNITS: dict[str, str] = {"zprime": "", "scalar": "", "alp": "GeV^-1"}
"""Units of :data:`COUPLING_NAMES` (the ALP's |C_ll|/Lambda is in GeV^-1 throughout)."""
GEV_INV_TO_TEV_INV: float = 1.0e3
"""Multiply a |C_ll|/Lambda in GeV^-1 by this to get TeV^-1."""

LEPTON_MASSES: dict[str, float] = {"e": M_ELECTRON, "mu": M_MUON, "tau": M_TAU}
"""Charged-lepton masses in GeV (PDG via ``particle``)."""
CHANNELS: tuple[str, ...] = ("ee", "mumu", "tautau", "nunu", "gammagamma")
"""Keys of :func:`partial_widths` and :func:`branching_fractions` (zero where a mode is absent)."""

ANALYSIS_MASS_RANGE: tuple[float, float] = (3.6, 10.0)
"""Mass range of the search in GeV (PRL 131, 121802), inclusive."""
WIDTH_MASS_RANGE: tuple[float, float] = (2.0 * M_TAU, SQRT_S)
"""Open mass interval (2 m_tau, sqrt(s)) in GeV where the widths are provided."""

G2_DELTA_A_MU_2021: float = _zp.G2_DELTA_A_MU
"""Delta a_mu = 251e-11 (Muon g-2, PRL 126, 141801 (2021), FNAL Run 1 + BNL vs the Theory
Initiative's 2020 SM value); the default of :func:`g2_band`."""
G2_SIGMA_A_MU_2021: float = _zp.G2_SIGMA_A_MU
"""Uncertainty of :data:`G2_DELTA_A_MU_2021`: 59e-11."""
G2_DELTA_A_MU_2023: float = 249e-11
"""Delta a_mu = 249e-11 (Muon g-2, PRL 131, 161802 (2023), FNAL Runs 1-3 + BNL vs the 2020 SM
value); published after the tau-tau paper was accepted."""
G2_SIGMA_A_MU_2023: float = 48e-11
"""Uncertainty of :data:`G2_DELTA_A_MU_2023`: 48e-11."""

SigmaUnit = ArrayLike | Callable[[NDArray[np.float64]], ArrayLike]
"""sigma(e+e- -> mu+ mu- X) in fb at unit muon-vertex coupling (y = 1, g' = 1): numbers
broadcast against the masses, or a callable of the mass array in GeV."""

# Gauss-Legendre rule for the (g-2) loop integrals, used after a substitution that resolves the
# peak of width ~1/r at small z (as in zprime.physics.model).
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(128)
_GL_S = 0.5 * (_GL_NODES + 1.0)
_GL_W = 0.5 * _GL_WEIGHTS


# --------------------------------------------------------------------------- input checking
def _as_array(value: Any, name: str) -> tuple[NDArray[np.float64], bool]:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{name} must be a number or an array of numbers, got {value!r}"
        ) from None
    return arr, arr.ndim == 0


def _first_bad(arr: NDArray[np.float64], bad: NDArray[np.bool_]) -> float:
    return float(np.broadcast_to(arr, bad.shape)[bad].flat[0])


def _out(arr: NDArray[Any], scalar: bool) -> Any:
    return float(arr) if scalar else arr


def check_model(model: Any) -> str:
    """Return ``model`` if it is one of :data:`MODELS`, else raise a one-line ConfigError."""
    if not isinstance(model, str) or model not in MODELS:
        raise ConfigError(f"unknown model {model!r}; expected one of {', '.join(MODELS)}")
    return model


def _check_positive(value: Any, name: str, unit: str = "") -> tuple[NDArray[np.float64], bool]:
    arr, scalar = _as_array(value, name)
    bad = ~np.isfinite(arr) | (arr <= 0.0)
    if np.any(bad):
        suffix = f" {unit}" if unit else ""
        raise ConfigError(f"{name} = {_first_bad(arr, bad)!r}{suffix} must be finite and > 0")
    return arr, scalar


def _check_width_mass(mass: Any) -> tuple[NDArray[np.float64], bool]:
    m, scalar = _as_array(mass, "mass")
    lo, hi = WIDTH_MASS_RANGE
    bad = ~np.isfinite(m) | (m <= lo) | (m >= hi)
    if np.any(bad):
        raise ConfigError(
            f"mass = {_first_bad(m, bad)!r} GeV is outside ({lo:.4f}, {hi:.3f}) GeV, "
            "from the tau tau threshold to sqrt(s)"
        )
    return m, scalar


def check_analysis_mass(mass: ArrayLike) -> NDArray[np.float64]:
    """Check masses for the search's range 3.6-10 GeV (inclusive); return them as an array.

    Raises
    ------
    ConfigError
        One line naming the first mass that is NaN, infinite or outside the range.
    """
    m, _ = _as_array(mass, "mass")
    lo, hi = ANALYSIS_MASS_RANGE
    bad = ~np.isfinite(m) | (m < lo) | (m > hi)
    if np.any(bad):
        raise ConfigError(
            f"mass = {_first_bad(m, bad)!r} GeV is outside the search range {lo:g}-{hi:g} GeV"
        )
    return m


def _coupling_name(model: str) -> str:
    unit = COUPLING_UNITS[model]
    return COUPLING_NAMES[model] + (f" [{unit}]" if unit else "")


# --------------------------------------------------------------------------- loop functions
def loop_f(tau: ArrayLike) -> Any:
    """The one-loop function f(tau) of a fermion triangle, tau = 4 m_f^2 / M^2 > 0 (complex).

    f = arcsin(1/sqrt(tau)) for tau >= 1 and pi/2 + (i/2) ln[(1 + sqrt(1 - tau)) /
    (1 - sqrt(1 - tau))] for tau < 1 (Bauer, Neubert, Thamm 2017); f^2 is the function of the
    Higgs literature (Djouadi 2008). Below threshold the logarithm is evaluated as
    2 ln(1 + sqrt(1 - tau)) - ln(tau), which keeps full precision for tau -> 0.
    """
    t, scalar = _check_positive(tau, "tau")
    out = np.empty(t.shape, dtype=np.complex128)
    above = t >= 1.0
    out[above] = np.arcsin(1.0 / np.sqrt(t[above]))
    below = ~above
    s = np.sqrt(1.0 - t[below])
    out[below] = 0.5 * np.pi + 0.5j * (2.0 * np.log1p(s) - np.log(t[below]))
    return complex(out) if scalar else out


def a_half_scalar(tau: ArrayLike) -> Any:
    """A_1/2(tau) = 2 tau [1 + (1 - tau) f(tau)^2]: a fermion loop in S -> gamma gamma (complex).

    Normalised as the Higgs' A_1/2^H (Djouadi 2008): 4/3 for a heavy fermion (tau -> inf),
    0 for a light one (tau -> 0).
    """
    t, scalar = _check_positive(tau, "tau")
    f = np.asarray(loop_f(t), dtype=np.complex128)
    out = 2.0 * t * (1.0 + (1.0 - t) * f**2)
    return complex(out) if scalar else out


def b1_alp(tau: ArrayLike) -> Any:
    """B_1(tau) = 1 - tau f(tau)^2: a fermion loop in a -> gamma gamma (complex).

    Bauer, Neubert, Thamm 2017 (derivative couplings): 1 for a light fermion, -> -1/(3 tau) -> 0
    for a heavy one.
    """
    t, scalar = _check_positive(tau, "tau")
    f = np.asarray(loop_f(t), dtype=np.complex128)
    out = 1.0 - t * f**2
    return complex(out) if scalar else out


# --------------------------------------------------------------------------- couplings
def _unit_vertex(model: str, lepton: str) -> float:
    """Vertex coupling y_l at unit model coupling."""
    if lepton not in LEPTON_MASSES:
        raise ConfigError(f"unknown lepton {lepton!r}; expected one of e, mu, tau")
    if model == "zprime":
        return {"e": 0.0, "mu": 1.0, "tau": -1.0}[lepton]
    if model == "scalar":
        return LEPTON_MASSES[lepton] / V_HIGGS
    return LEPTON_MASSES[lepton]  # alp: y = (C/Lambda) m_l with C/Lambda in GeV^-1


def vertex_coupling(model: str, coupling: ArrayLike, lepton: str = "mu") -> Any:
    """The Yukawa / gauge coupling y of X to a lepton at a given model coupling.

    Parameters
    ----------
    model
        ``"zprime"``, ``"scalar"`` or ``"alp"``.
    coupling
        g' (Z'), xi (S) or |C_ll|/Lambda in GeV^-1 (ALP); > 0.
    lepton
        ``"e"``, ``"mu"`` (default: the vertex of e+e- -> mu mu X) or ``"tau"``.

    Returns
    -------
    float or numpy.ndarray
        Z': g' for mu, -g' for tau, 0 for e (vertex ``-i y gamma^mu``); S: xi m_l / v (vertex of
        ``L = -y S lbar l``); ALP: C m_l / Lambda (``L = -i y a lbar gamma_5 l``, the on-shell
        equivalent of the derivative coupling, same sign as C).
    """
    check_model(model)
    c, scalar = _check_positive(coupling, _coupling_name(model))
    return _out(c * _unit_vertex(model, lepton), scalar)


def coupling_from_vertex(model: str, y: ArrayLike) -> Any:
    """Invert :func:`vertex_coupling` for the muon: g', xi or |C_ll|/Lambda [GeV^-1] from y > 0."""
    check_model(model)
    yy, scalar = _check_positive(y, "y")
    return _out(yy / _unit_vertex(model, "mu"), scalar)


# --------------------------------------------------------------------------- partial widths
def _beta2(mass: NDArray[np.float64], m_l: float) -> NDArray[np.float64]:
    return np.clip(1.0 - 4.0 * m_l**2 / mass**2, 0.0, None)


def _scalar_widths(m: NDArray[np.float64], xi: NDArray[np.float64]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    amp = np.zeros(m.shape, dtype=np.complex128)
    for name, ml in LEPTON_MASSES.items():
        b2 = _beta2(m, ml)
        out[f"{name}{name}"] = xi**2 * ml**2 * m * b2**1.5 / (8.0 * math.pi * V_HIGGS**2)
        amp = amp + np.asarray(a_half_scalar(4.0 * ml**2 / m**2), dtype=np.complex128)
    out["gammagamma"] = (
        ALPHA_0**2 * m**3 * xi**2 / (256.0 * math.pi**3 * V_HIGGS**2) * np.abs(amp) ** 2
    )
    return out


def _alp_widths(m: NDArray[np.float64], c: NDArray[np.float64]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    amp = np.zeros(m.shape, dtype=np.complex128)
    for name, ml in LEPTON_MASSES.items():
        b2 = _beta2(m, ml)
        out[f"{name}{name}"] = c**2 * ml**2 * m * np.sqrt(b2) / (8.0 * math.pi)
        amp = amp + np.asarray(b1_alp(4.0 * ml**2 / m**2), dtype=np.complex128)
    out["gammagamma"] = ALPHA_0**2 * m**3 * c**2 / (64.0 * math.pi**3) * np.abs(amp) ** 2
    return out


def _zprime_widths(m: NDArray[np.float64], g: NDArray[np.float64]) -> dict[str, Any]:
    w = _zp.partial_widths(m, g)
    return {
        "ee": np.zeros(np.shape(w["mumu"])),
        "mumu": np.asarray(w["mumu"], dtype=np.float64),
        "tautau": np.asarray(w["tautau"], dtype=np.float64),
        "nunu": np.asarray(w["nunu"], dtype=np.float64),
        "gammagamma": np.zeros(np.shape(w["mumu"])),  # Landau-Yang
    }


def _widths(model: str, m: NDArray[np.float64], c: NDArray[np.float64]) -> dict[str, Any]:
    if model == "zprime":
        raw = _zprime_widths(m, c)
    elif model == "scalar":
        raw = _scalar_widths(m, c)
        raw["nunu"] = 0.0
    else:
        raw = _alp_widths(m, c)
        raw["nunu"] = 0.0
    shape = np.broadcast_shapes(m.shape, c.shape)
    return {
        k: np.broadcast_to(np.asarray(raw[k], dtype=np.float64), shape).copy() for k in CHANNELS
    }


def partial_widths(model: str, mass: ArrayLike, coupling: ArrayLike = 1.0) -> dict[str, Any]:
    """All partial widths of X in GeV.

    Parameters
    ----------
    model
        ``"zprime"``, ``"scalar"`` or ``"alp"``.
    mass
        X mass in GeV, 2 m_tau < M < sqrt(s); scalar or array.
    coupling
        g' (Z'), xi (S) or |C_ll|/Lambda in GeV^-1 (ALP); > 0, broadcast against ``mass``.

    Returns
    -------
    dict
        ``ee``, ``mumu``, ``tautau``, ``nunu`` (Z' only, both flavours) and ``gammagamma``
        (S and a, lepton loops); absent modes are 0.
    """
    check_model(model)
    m, scalar = _check_width_mass(mass)
    c, cscalar = _check_positive(coupling, _coupling_name(model))
    return {k: _out(v, scalar and cscalar) for k, v in _widths(model, m, c).items()}


def total_width(model: str, mass: ArrayLike, coupling: ArrayLike = 1.0) -> Any:
    """Total width of X in GeV: the sum of :func:`partial_widths`."""
    check_model(model)
    m, scalar = _check_width_mass(mass)
    c, cscalar = _check_positive(coupling, _coupling_name(model))
    return _out(sum(_widths(model, m, c).values()), scalar and cscalar)


def branching_fractions(model: str, mass: ArrayLike) -> dict[str, Any]:
    """Branching fractions of X (coupling-independent: every width scales as coupling^2).

    Parameters
    ----------
    model
        ``"zprime"``, ``"scalar"`` or ``"alp"``.
    mass
        X mass in GeV, 2 m_tau < M < sqrt(s).

    Returns
    -------
    dict
        Keys of :data:`CHANNELS`; the values sum to 1.
    """
    check_model(model)
    m, scalar = _check_width_mass(mass)
    w = _widths(model, m, np.ones(()))
    total = sum(w.values())
    return {k: _out(v / total, scalar) for k, v in w.items()}


def branching_tautau(model: str, mass: ArrayLike) -> Any:
    """B(X -> tau+ tau-), independent of the coupling. See :func:`branching_fractions`."""
    return branching_fractions(model, mass)["tautau"]


# --------------------------------------------------------------------------- sigma <-> coupling
def _sigma_unit(sigma_unit_fb: SigmaUnit, m: NDArray[np.float64]) -> NDArray[np.float64]:
    values = sigma_unit_fb(m) if callable(sigma_unit_fb) else sigma_unit_fb
    sig, _ = _as_array(values, "sigma_unit_fb")
    try:
        sig = np.broadcast_to(sig, np.broadcast_shapes(sig.shape, m.shape))
    except ValueError:
        raise ConfigError(
            f"sigma_unit_fb (shape {sig.shape}) does not broadcast against mass (shape {m.shape})"
        ) from None
    bad = ~np.isfinite(sig) | (sig < 0.0)
    if np.any(bad):
        raise ConfigError(
            f"sigma_unit_fb = {_first_bad(sig, bad)!r} fb must be finite and >= 0 "
            "(the cross section at unit vertex coupling)"
        )
    return sig


def sigma_times_br(
    model: str, mass: ArrayLike, coupling: ArrayLike, sigma_unit_fb: SigmaUnit
) -> Any:
    """sigma(e+e- -> mu+ mu- X) x B(X -> tau tau) in fb at a model coupling.

    sigma x B = y(coupling)^2 sigma_{y=1}(M) B_tautau(M), y from :func:`vertex_coupling`.

    Parameters
    ----------
    model
        ``"zprime"``, ``"scalar"`` or ``"alp"``.
    mass
        X mass in GeV, 3.6-10 GeV.
    coupling
        g', xi or |C_ll|/Lambda [GeV^-1]; > 0.
    sigma_unit_fb
        sigma(e+e- -> mu mu X) in fb at unit muon-vertex coupling (g' = 1 or y = 1), from the
        generator's tables: numbers broadcast against ``mass``, or a callable of the mass array.
    """
    check_model(model)
    m = check_analysis_mass(mass)
    scalar = m.ndim == 0
    c, cscalar = _check_positive(coupling, _coupling_name(model))
    sig = _sigma_unit(sigma_unit_fb, m)
    y = c * _unit_vertex(model, "mu")
    return _out(y**2 * sig * branching_tautau(model, m), scalar and cscalar and sig.ndim == 0)


def coupling_limit(
    model: str, mass: ArrayLike, sigma_limit_fb: ArrayLike, sigma_unit_fb: SigmaUnit
) -> Any:
    """Upper limit on the model coupling from an upper limit on sigma(e+e- -> mu mu X) x B(tau tau).

    B(X -> tau tau) does not depend on the coupling (all widths scale as its square), so the
    solution of y^2 sigma_{y=1} B = sigma_UL is exact: y_UL = sqrt(sigma_UL / (sigma_{y=1} B)),
    then g' = y_UL, xi = y_UL v / m_mu, |C_ll|/Lambda = y_UL / m_mu [GeV^-1]. Where
    sigma_{y=1} = 0 the limit is ``inf``.

    Parameters
    ----------
    model
        ``"zprime"``, ``"scalar"`` or ``"alp"``.
    mass
        X mass in GeV, 3.6-10 GeV.
    sigma_limit_fb
        Upper limit on sigma x B in fb (> 0), broadcast against ``mass``.
    sigma_unit_fb
        sigma(e+e- -> mu mu X) in fb at unit muon-vertex coupling, as in :func:`sigma_times_br`.

    Returns
    -------
    float or numpy.ndarray
        g', xi, or |C_ll|/Lambda in GeV^-1 (times :data:`GEV_INV_TO_TEV_INV` for TeV^-1).
    """
    check_model(model)
    m = check_analysis_mass(mass)
    ul, ulscalar = _check_positive(sigma_limit_fb, "sigma_limit_fb", "fb")
    sig = _sigma_unit(sigma_unit_fb, m)
    denom = sig * branching_tautau(model, m)
    with np.errstate(divide="ignore"):
        y2 = np.where(denom > 0.0, ul / np.where(denom > 0.0, denom, 1.0), np.inf)
    scalar = m.ndim == 0 and ulscalar and sig.ndim == 0
    return _out(np.sqrt(y2) / abs(_unit_vertex(model, "mu")), scalar)


# --------------------------------------------------------------------------- (g-2)_mu
def _loop_integral(r: NDArray[np.float64], numerator: Callable[[Any], Any]) -> NDArray[np.float64]:
    """int_0^1 numerator(z) / ((1-z)^2 + r z) dz for r > 0 by Gauss-Legendre after
    z = expm1(a s)/expm1(a), a = ln(1 + r), which spreads the peak of width ~1/r near z = 0."""
    rr = np.asarray(r, dtype=np.float64)[..., None]
    a = np.log1p(rr)
    norm = np.expm1(a)
    z = np.expm1(a * _GL_S) / norm
    dz_ds = a * np.exp(a * _GL_S) / norm
    one_minus = 1.0 - z
    integrand = numerator(z) / (one_minus**2 + rr * z) * dz_ds
    return integrand @ _GL_W


def _scalar_loop(r: NDArray[np.float64]) -> NDArray[np.float64]:
    """I_S(r) = int (1-z)^2 (1+z) / ((1-z)^2 + r z): 3/2 at r -> 0, (ln r - 7/6)/r at r -> inf."""
    return _loop_integral(r, lambda z: (1.0 - z) ** 2 * (1.0 + z))


def _pseudoscalar_loop(r: NDArray[np.float64]) -> NDArray[np.float64]:
    """I_P(r) = int (1-z)^3 / ((1-z)^2 + r z) = h_1(r)/2 of Bauer, Neubert, Thamm:
    1/2 at r -> 0, (ln r - 11/6)/r at r -> inf."""
    return _loop_integral(r, lambda z: (1.0 - z) ** 3)


def barr_zee_f_ps(z: ArrayLike) -> Any:
    """f_PS(z) = z int_0^1 dx ln(x(1-x)/z) / (x(1-x) - z), 0 < z < 1/4 (Barr-Zee loop function).

    Closed form 2z/y [Li2(1 - (1-y)/(2z)) - Li2(1 - (1+y)/(2z))], y = sqrt(1 - 4z)
    (Stoeckinger, J. Phys. G 34 (2007) R45, hep-ph/0609168, eq. (70)); Li2(1 - w) is
    ``scipy.special.spence(w)`` and (1 - y)/(2z) = 2/(1 + y) avoids the cancellation at small z.
    """
    zz, scalar = _check_positive(z, "z")
    bad = zz >= 0.25
    if np.any(bad):
        raise ConfigError(f"z = {_first_bad(zz, bad)!r} must be < 1/4 (below the pair threshold)")
    y = np.sqrt(1.0 - 4.0 * zz)
    out = 2.0 * zz / y * (spence(2.0 / (1.0 + y)) - spence((1.0 + y) / (2.0 * zz)))
    return _out(out, scalar)


def barr_zee_f_s(z: ArrayLike) -> Any:
    """f_S(z) = (2z - 1) f_PS(z) - 2z (2 + ln z) = z int_0^1 dx (2x(1-x) - 1) ln(x(1-x)/z) /
    (x(1-x) - z), 0 < z < 1/4 (hep-ph/0609168, eq. (71)); negative."""
    zz, scalar = _check_positive(z, "z")
    fps = np.asarray(barr_zee_f_ps(zz), dtype=np.float64)
    return _out((2.0 * zz - 1.0) * fps - 2.0 * zz * (2.0 + np.log(zz)), scalar)


def _scalar_barr_zee(m: NDArray[np.float64], xi: NDArray[np.float64]) -> NDArray[np.float64]:
    """Two-loop Barr-Zee term of S with a photon and a charged-lepton loop (Yukawa couplings
    xi m_l / v): alpha m_mu^2 xi^2 / (8 pi^3 v^2) sum_l f_S(m_l^2 / M^2), the photon part of
    eq. (53) of Cherchiglia, Kneschke, Stoeckinger, Stoeckinger-Kim, JHEP 01 (2017) 007,
    arXiv:1607.06292 (the form GM2Calc implements), for N_c Q_l^2 = 1; the Z part is
    suppressed by (1/4 - s_W^2) M^2 / m_Z^2 and left out."""
    total = np.zeros(m.shape)
    for ml in LEPTON_MASSES.values():
        total = total + np.asarray(barr_zee_f_s(ml**2 / m**2), dtype=np.float64)
    return ALPHA_0 * M_MUON**2 * xi**2 / (8.0 * math.pi**3 * V_HIGGS**2) * total


def delta_a_mu(model: str, mass: ArrayLike, coupling: ArrayLike, *, two_loop: bool = False) -> Any:
    """Contribution of X to the muon anomaly a_mu = (g-2)/2; one loop by default.

    Parameters
    ----------
    model
        ``"zprime"`` (:func:`zprime.physics.model.delta_a_mu`, > 0), ``"scalar"``
        (y^2/(8 pi^2) I_S(r) > 0) or ``"alp"`` (-y^2/(8 pi^2) I_P(r) < 0), y the muon vertex
        coupling and r = M^2/m_mu^2 (Leveille 1978; Jegerlehner & Nyffeler 2009).
    mass
        X mass in GeV, 2 m_tau < M < sqrt(s).
    coupling
        g', xi or |C_ll|/Lambda [GeV^-1]; > 0, broadcast against ``mass``.
    two_loop
        Scalar only: add the two-loop Barr-Zee term with a charged-lepton loop
        (:func:`barr_zee_f_s`; negative, -50% to -100% of the one-loop term at 4-10 GeV).
        For the ALP the two-loop term depends on the basis of the lepton couplings (derivative
        or Yukawa; they differ by the anomaly) and is not provided; for the Z' it is negligible.
    """
    check_model(model)
    if two_loop and model != "scalar":
        raise ConfigError(f"two_loop is provided for model 'scalar' only, not {model!r}")
    m, scalar = _check_width_mass(mass)
    c, cscalar = _check_positive(coupling, _coupling_name(model))
    if model == "zprime":
        return _out(np.asarray(_zp.delta_a_mu(c, m), dtype=np.float64), scalar and cscalar)
    y = c * _unit_vertex(model, "mu")
    r = (m / M_MUON) ** 2
    if model == "scalar":
        out = y**2 / (8.0 * math.pi**2) * _scalar_loop(r)
        if two_loop:
            out = out + _scalar_barr_zee(m, c)
    else:
        out = -(y**2) / (8.0 * math.pi**2) * _pseudoscalar_loop(r)
    return _out(np.asarray(out, dtype=np.float64), scalar and cscalar)


def g2_band(
    model: str,
    mass: ArrayLike,
    *,
    delta: float = G2_DELTA_A_MU_2021,
    sigma: float = G2_SIGMA_A_MU_2021,
    n_sigma: float = 2.0,
    two_loop: bool = False,
) -> _zp.G2Band | None:
    """The couplings for which X explains Delta a_mu within +-n_sigma, or ``None`` for the ALP.

    Delta a_mu of each model is proportional to its coupling squared, so
    coupling = sqrt(Delta a_mu / Delta a_mu(coupling = 1, M)). The ALP's one-loop contribution
    is negative: it cannot explain a positive Delta a_mu and has no band (``None``).

    Parameters
    ----------
    model
        ``"zprime"``, ``"scalar"`` or ``"alp"``.
    mass
        X mass in GeV, 2 m_tau < M < sqrt(s).
    delta, sigma
        Delta a_mu and its uncertainty; default (251 +- 59) x 10^-11 (PRL 126, 141801 (2021));
        :data:`G2_DELTA_A_MU_2023`, :data:`G2_SIGMA_A_MU_2023` for the 2023 value.
    n_sigma
        Half-width of the band in units of ``sigma`` (2 as in the Belle II papers).
    two_loop
        Scalar only: include the Barr-Zee term (:func:`delta_a_mu`). Where the sum is <= 0
        no coupling explains Delta a_mu and the band is NaN.

    Returns
    -------
    zprime.physics.model.G2Band or None
        ``(low, central, high)`` in the model's coupling (|C_ll|/Lambda in GeV^-1 does not
        occur); the low edge is 0 when delta - n_sigma sigma <= 0.
    """
    check_model(model)
    m, scalar = _check_width_mass(mass)
    d, _ = _check_positive(delta, "delta")
    s, _ = _as_array(sigma, "sigma")
    n, _ = _as_array(n_sigma, "n_sigma")
    for name, val in (("sigma", s), ("n_sigma", n)):
        if val.ndim != 0 or not (math.isfinite(float(val)) and float(val) >= 0.0):
            raise ConfigError(f"{name} = {float(np.ravel(val)[0])!r} must be finite and >= 0")
    if two_loop and model != "scalar":
        raise ConfigError(f"two_loop is provided for model 'scalar' only, not {model!r}")
    if model == "alp":
        return None
    if model == "zprime":
        return _zp.g2_band(m, delta=float(d), sigma=float(s), n_sigma=float(n))
    unit = np.asarray(delta_a_mu(model, m, 1.0, two_loop=two_loop), dtype=np.float64)
    unit = np.where(unit > 0.0, unit, np.nan)
    lower = max(float(d) - float(n) * float(s), 0.0)
    return _zp.G2Band(
        low=_out(np.sqrt(lower / unit), scalar),
        central=_out(np.sqrt(float(d) / unit), scalar),
        high=_out(np.sqrt((float(d) + float(n) * float(s)) / unit), scalar),
    )
