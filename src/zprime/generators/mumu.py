"""e+e- -> mu+ mu- (gamma) at Belle II, generated only where it can pass the preselection.

The invisible-Z' search (Belle II, PRL 130, 231801 (2023)) selects two muons and nothing else
with a recoil of c.m. transverse momentum above 0.5 GeV. A mu+ mu- event has such a recoil only
when photons with that transverse momentum are emitted, and it fakes the signal only when they
escape. Pythia 8 generates the inclusive process, 99.9% back-to-back pairs that no filter lets
through; this module generates the part with a photon of transverse momentum directly, weighted,
with an importance sampling that puts the points where the generator-level filter (and the
photon veto) let them count.

The scheme
----------
*Hard process.* e-(p1) e+(p2) -> mu-(k1) mu+(k2) gamma(k) at tree level, O(alpha^3): all four
diagrams (photon from the e-, the e+, the mu-, the mu+) and the ISR-FSR interference, muon mass
kept, electrons massless, s-channel photon only. Z exchange is neglected: its interference with
the photon is of order s/m_Z^2 (G_F s / (2 sqrt(2) pi alpha) ~ 1.3%) times the vector/axial
couplings, about 1% in total at 10.58 GeV and odd in cos(theta) (the forward-backward
asymmetry, -0.5%), well below the other uncertainties of the background model. The spin-summed
squared matrix element is an analytic trace expression derived with FORM
(``tools/mumugamma_me.frm``, generated into :mod:`zprime.generators._mumugamma_me_generated` by
``tools/generate_mumugamma_me.py``; Ward identities of the real photon checked symbolically),
and is checked in ``tests/generators/test_gen_mumu.py`` against the 32 helicity amplitudes built
with the
explicit Dirac matrices of :mod:`zprime.physics.dirac`, against gauge invariance, against the FSR
matrix
element of the signal (:mod:`zprime.generators.signal`, e+e- -> mu mu Z' with M -> 0, g' = e) and
against
the soft-photon (eikonal) limit. The classic compact form of the same matrix element is F. A.
Berends, R. Kleiss et al., Nucl. Phys. B202 (1982) 63 (massless), and for massive muons the
MUSTRAAL/KORALB matrix element (Berends, Kleiss, Jadach, Comput. Phys. Commun. 29 (1983) 185).

*Transverse-momentum ordering.* The exact matrix element generates the photon of largest
transverse momentum: ``p_T`` with respect to the beam axis of the hard frame above
``pt_gamma_min_gev`` (0.1 GeV), at any angle and any energy. The initial-state photons beyond
it come from the leading-log picture, one photon per beam: its energy from the Kuraev-Fadin
structure function of :mod:`zprime.generators.isr` with the full
``beta = (2 alpha/pi)(ln(s/m_e^2) - 1)``, its polar angle about its beam (c.m. frame) from the
leading-log angular density of a photon radiated by a beam of velocity b (the quasi-collinear
eikonal factor of the beam, integrated over the azimuth),

.. math::

    \\frac{dP}{dc} \\propto \\frac{1}{t} - \\frac{1 - b^2}{2 t^2},
    \\qquad t = 1 - b\\cos\\theta,

whose integral over the full range is ``ln((1+b)/(1-b))/b - 1 = ln(4E^2/m_e^2) - 1`` (to
O(m_e^2/E^2)), the logarithm of beta: the energy and the angle distributions are those of the
same leading-log emission (structure functions and QED parton showers alike, e.g. O. Nicrosini
and L. Trentadue, Phys. Lett. B 196 (1987) 551; the collinear photons of the Pythia 8 shower
against which the sample is validated are distributed the same way). The azimuth is uniform.
An event in which a structure-function photon has a larger ``p_T`` (with respect to its beam, in
the c.m. frame) than the matrix-element photon (hard frame) gets weight 0: that configuration
belongs to the matrix element's photon, which describes it exactly, and the veto removes the
double counting at O(alpha). This is the ``p_T``-ordered matching of an exact one-emission
matrix element to a leading-log shower of POWHEG (P. Nason, JHEP 0411 (2004) 040), with the
structure function in the role of the shower and without POWHEG's NLO normalisation (the K
factor below normalises instead).

*Kinematics.* The structure-function photons k1 (e- side) and k2 (e+ side) have c.m. energies
``v1 E`` and ``v2 E`` (E = sqrt(s)/2) and their sampled angles; ``Q = P_cm - k1 - k2`` carries
the hard process, ``s_hat = Q^2``. In the rest frame of Q the reduced beams ``p1 - k1`` and
``p2 - k2`` are back to back (their sum is Q); their direction is the beam axis of the hard
frame. In the leading-log approximation the reduced beams are taken massless along that axis
with energy ``sqrt(s_hat)/2`` each, the exact matrix element is evaluated there, and the final
state is boosted (a general Lorentz boost) back to the c.m. frame and to the lab
(:func:`zprime.physics.kinematics.cm_to_lab`). Four-momentum is conserved exactly in every event.

*What is not generated.* Events whose photons all have ``p_T < pt_gamma_min`` (the matrix-
element photon below the cut, the structure-function photons below it by the ordering): their
recoil against the muon pair has ``p_T < 3 pt_gamma_min`` (two initial-state photons and one
more), and the filter's recoil cut (``recoil_pt_cm_min_gev``, 0.4 GeV) must lie above that,
which :func:`describe` and :func:`chunk` check. Soft photons below the cut are not added to the
generated events either (a transverse kick below 0.1 GeV).

*Normalisation.* As the Pythia sample, to ``xsec_ref_fb`` = 1.148e6 fb (KKMC, Belle II Physics
Book, arXiv:1808.10567): every weight is multiplied by ``K = xsec_ref_fb / sigma_SF``, with
``sigma_SF = int dv W(v) sigma_Born(s (1 - v))`` the inclusive structure-function cross section
(full beta, :func:`zprime.generators.isr.radiator`; Born with the muon mass and alpha(0),
sqrt(s_hat) >
``m_mumu_min_gev``, Pythia's mHatMin). K carries the higher orders (virtual, soft, vacuum
polarisation) that KKMC has and tree level lacks, assuming they factorise.

*Importance sampling.* The phase space is mapped with the known peaks flattened analytically:
the structure-function singularity ``v^(beta/2 - 1)`` of each beam (``v = u^(2/beta)``), the
angular peak of each structure-function photon (``t`` log-uniform, the remaining factor
``1 - (1 - b^2)/(2t)`` of the density a weight between 0 and 1), the soft and collinear peaks of
the matrix-element photon ``d p_T / p_T dy`` (log p_T flat from pt_gamma_min to its maximum,
``y = atanh(cos theta_gamma)`` flat over the range the p_T cut allows), and, in the mu mu rest
frame, a two-channel mixture for the muon direction about the photon direction: flat in
atanh(beta_mu cos) (the FSR peaks ``1/((k1 k)(k2 k))``) and isotropic (balance heuristic, equal
channel weights). A :class:`vegas.AdaptiveMap` adapts what is left (all but the structure-
function angles, whose map is nearly exact and which vegas would pull onto the collinear peak
that dominates the target), trained once per option set and filter with a fixed seed and cached
per process, on the target density
``f(x) filter(x) r(x)``: ``f`` the cross section, ``filter`` the generator-level filter
(:func:`zprime.generators.filters.filter_mask`), ``r = 1`` where the event can pass the
preselection's photon and recoil cuts at truth level, with margins (the photons of lab energy
above 0.1 GeV inside the ECL acceptance outside its gaps, 12.4-31.4, 32.2-128.7 and
130.7-155.1 deg, sum to less than 0.6 GeV and none lies within 10 deg of the recoil; below
M_recoil^2 = 3 GeV^2 the recoil points into 31-126 deg) and
``r = detected_photon_suppression`` (default 0.1) elsewhere: those events pass the signal
selection only through a detector inefficiency or a resolution tail but matter for the control
samples, so they are kept with about 1/r larger weights. (A first version with r = 1 wherever
the photon veto could pass spread the sampling over 30 times more phase space than the
preselection keeps: the preselected events then weighed 2-10 times the target weight.) The
weights stay exact: ``w = f K / (N g)``.

*Partial unweighting.* With a target weight ``w_t = 1 / (luminosity_factor L)`` fb (set by the
sample driver as ``settings['target_weight_fb']``, or ``options['target_weight_fb']``), each
region is unweighted toward its design weight ``w_d``: ``w_t`` where the event can pass the
photon veto (r = 1), ``w_t / r`` elsewhere. An event with ``w < w_d`` is kept with probability
``w / w_d`` and given ``w_d``; heavier events keep their weight. The separable vegas map cannot
follow the photon-veto region (a function of the lab angles of three photons), so without the
second threshold the r < 1 region would be written at nearly the density of the r = 1 region,
wasting simulation and disk on events that pass the signal selection only through a detector
inefficiency.

References: Belle II, PRL 130, 231801 (2023); E. Kou et al., Belle II Physics Book, PTEP 2019,
123C01 (arXiv:1808.10567); E. A. Kuraev and V. S. Fadin, Sov. J. Nucl. Phys. 41 (1985) 466;
P. Nason, JHEP 0411 (2004) 040 (p_T-ordered matching); G. P. Lepage, J. Comput. Phys. 27 (1978)
192 and vegas 6 (the adaptive map); R. Kleiss and R. Pittau, Comput. Phys. Commun. 83 (1994)
141 (multichannel weights).

Length: one generator: the matrix-element interface, the importance sampling and the chunk function
share the phase-space parametrisation.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import awkward as ak
import numpy as np
import vegas
from numpy.typing import ArrayLike, NDArray

from zprime.errors import ConfigError, InputError
from zprime.generators import _mumugamma_me_generated as _me
from zprime.generators.chunk import ChunkResult
from zprime.generators.filters import filter_mask
from zprime.generators.isr import beta_isr, radiator
from zprime.io.events import make_particles
from zprime.physics.constants import ALPHA_0, GEV2_TO_FB, M_ELECTRON, M_MUON, P_BEAMS_LAB, SQRT_S
from zprime.physics.dirac import minkowski_dot as _dot
from zprime.physics.kinematics import cm_to_lab

__all__ = [
    "DEFAULT_OPTIONS",
    "OPTION_DOCS",
    "born_cross_section",
    "check_filter",
    "chunk",
    "describe",
    "generate",
    "hard_cross_section",
    "ll_angle_density",
    "matrix_element_squared",
    "resolve_options",
    "sample_ll_angle",
    "sigma_sf",
]

Array = NDArray[np.float64]

_M2 = M_MUON**2
_S = SQRT_S**2

_OPTIONS: dict[str, tuple[Any, str]] = {
    "pt_gamma_min_gev": (
        0.1,
        "minimum transverse momentum (to the beam axis of the hard frame) of the matrix-element "
        "photon, the photon of largest p_T, GeV; the filter's recoil_pt_cm_min_gev must be at "
        "least 3 times this (events with all photons below it are not generated)",
    ),
    "m_mumu_min_gev": (
        0.3,
        "minimum sqrt(s_hat) after the structure-function ISR and minimum mu mu mass, GeV "
        "(Pythia's mHatMin of the reference sample)",
    ),
    "detected_photon_suppression": (
        0.1,
        "r of the target density where the event fails the preselection's photon and recoil "
        "cuts (0 < r <= 1; those events then weigh 1/r times the target weight: keep it at "
        "1/luminosity_factor or above, or the pseudo-data get clumps); 1: sample the filtered "
        "cross section as it is",
    ),
    "target_weight_fb": (
        None,
        "target weight of the partial unweighting, fb (normally set by the sample driver as "
        "settings['target_weight_fb'] = 1/(luminosity_factor L)); null: no unweighting",
    ),
}

OPTION_DOCS: dict[str, str] = {key: doc for key, (_, doc) in _OPTIONS.items()}
"""Documentation of every generator option."""

DEFAULT_OPTIONS: dict[str, Any] = {key: value for key, (value, _) in _OPTIONS.items()}
"""Default generator options."""

# ECL acceptance and gaps (lab polar angle, deg; basf2 thetaInECLAcceptance, as the detector
# configuration), the photon energy below which a photon counts as undetected (the PRL's 0.1 GeV
# cluster threshold) and the detected energy the photon veto allows (the PRL's 0.5 GeV, with a
# margin): PRL 130, 231801; docs/detector.md.
_ECL_RANGE_DEG = (12.4, 155.1)
_ECL_GAPS_DEG = ((31.4, 32.2), (128.7, 130.7))
_E_UNDETECTED_GEV = 0.1
_E_VETO_GEV = 0.6
# the preselection's recoil cuts with margins (selection: photons within 15 deg of the recoil
# veto the event; below M_recoil^2 = 4 GeV^2 the recoil must point into 34-123 deg)
_VETO_CONE_DEG = 10.0
_M2_SPLIT_GEV2 = 3.0
_BARREL_DEG = (31.0, 126.0)

_TRAIN_SEED = 20230231  # fixed: the map depends only on options and filter, never on a seed
_TRAIN_ITERATIONS = 12
_TRAIN_POINTS = 40_000
_INTEGRATION_POINTS = 400_000
_N_INCREMENTS = 100
_BATCH = 200_000
# vegas: u1, u2 (structure-function energies), log p_T, y of the matrix-element photon, muon
# cos*, muon phi*
_DIM = 6
# uniform: azimuths of the three photons, channel of the muon direction, and the angles of the
# structure-function photons (their map is nearly exact, weights 0-1.053: left out of vegas,
# which would concentrate them on the collinear peak that dominates the target)
_N_EXTRA = 6


def _where(settings: Mapping[str, Any] | None, key: str) -> str:
    name = (settings or {}).get("name", "mumu")
    return f"backgrounds.samples.{name}.options.{key}"


def resolve_options(settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The generator options: :data:`DEFAULT_OPTIONS` updated by ``settings['options']``.

    ``settings['target_weight_fb']`` (what the sample driver sets) fills ``target_weight_fb``
    when the options do not give it.

    Raises
    ------
    ConfigError
        One line naming ``backgrounds.samples.<name>.options.<key>`` for an unknown option or a
        value of the wrong kind or range.
    """
    given = dict((settings or {}).get("options") or {})
    opts = dict(DEFAULT_OPTIONS)
    for key, value in given.items():
        where = _where(settings, key)
        if key not in opts:
            raise ConfigError(f"{where}: unknown option (known: {', '.join(opts)})")
        if value is None and key == "target_weight_fb":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        opts[key] = float(value)
    if opts["target_weight_fb"] is None and (settings or {}).get("target_weight_fb") is not None:
        opts["target_weight_fb"] = float(settings["target_weight_fb"])  # type: ignore[index]

    def fail(key: str, msg: str) -> None:
        raise ConfigError(f"{_where(settings, key)} = {opts[key]} {msg}")

    if not opts["pt_gamma_min_gev"] > 0.0:
        fail("pt_gamma_min_gev", "must be positive")
    if not 2.0 * M_MUON < opts["m_mumu_min_gev"] < SQRT_S - 1.0:
        fail("m_mumu_min_gev", f"must lie in ({2.0 * M_MUON:.4f}, {SQRT_S - 1.0:.3f}) GeV")
    e_max = (_S - opts["m_mumu_min_gev"] ** 2) / (2.0 * SQRT_S)
    if not opts["pt_gamma_min_gev"] < e_max:
        fail("pt_gamma_min_gev", f"must be below {e_max:.3f} GeV (set by m_mumu_min_gev)")
    if not 0.0 < opts["detected_photon_suppression"] <= 1.0:
        fail("detected_photon_suppression", "must lie in (0, 1]")
    if opts["target_weight_fb"] is not None and not opts["target_weight_fb"] > 0.0:
        fail("target_weight_fb", "must be positive")
    return opts


def check_filter(settings: Mapping[str, Any], opts: Mapping[str, Any]) -> None:
    """Refuse a filter that could pass events the generator does not generate.

    Every event left out has all photons below ``pt_gamma_min_gev`` and so a recoil p_T below
    3 pt_gamma_min (two initial-state photons and one more): the filter must cut the recoil p_T
    at or above that.

    Raises
    ------
    ConfigError
        One line naming ``backgrounds.samples.<name>.filter.recoil_pt_cm_min_gev`` and the
        option, for a missing or disabled filter, a missing recoil cut or one below 3 pt_min.
    """
    name = settings.get("name", "mumu")
    filt = settings.get("filter")
    pt3 = 3.0 * float(opts["pt_gamma_min_gev"])
    where = f"backgrounds.samples.{name}.filter.recoil_pt_cm_min_gev"
    cut = None
    if filt is not None and filt.get("enabled", True):
        cut = filt.get("recoil_pt_cm_min_gev")
    if cut is None:
        raise ConfigError(
            f"{where} is required by zprime.generators.mumu (at least 3 x "
            f"{_where(settings, 'pt_gamma_min_gev')} = {pt3:g} GeV): events with all photons "
            "below pt_gamma_min are not generated"
        )
    if float(cut) < pt3 * (1.0 - 1e-12):
        raise ConfigError(
            f"{where} = {float(cut):g} GeV is below 3 x {_where(settings, 'pt_gamma_min_gev')} = "
            f"{pt3:g} GeV: events with all photons below pt_gamma_min (not generated) could pass"
        )


# --------------------------------------------------------------------------------------------
# matrix element and cross sections


def _parts(p1: Array, p2: Array, q1: Array, q2: Array, k: Array) -> tuple[Array, Array, Array]:
    s = 2.0 * _dot(p1, p2)
    sp = 2.0 * _M2 + 2.0 * _dot(q1, q2)
    args = (
        s,
        sp,
        _dot(p1, k),
        _dot(p2, k),
        _dot(q1, k),
        _dot(q2, k),
        _dot(p1, q1),
        _dot(p1, q2),
        _dot(p2, q1),
        _dot(p2, q2),
        _M2,
    )
    return _me.isr_part(*args), _me.fsr_part(*args), _me.interference_part(*args)


def matrix_element_squared(
    p1: ArrayLike,
    p2: ArrayLike,
    q1: ArrayLike,
    q2: ArrayLike,
    k: ArrayLike,
    alpha: float = ALPHA_0,
    *,
    parts: bool = False,
) -> Array | tuple[Array, Array, Array]:
    """Spin-averaged tree-level |M|^2 of e-(p1) e+(p2) -> mu-(q1) mu+(q2) gamma(k).

    All four diagrams and their interference, muon mass kept, massless electrons, photon
    exchange only; dimensionless. Momenta are (..., 4) arrays (E, px, py, pz) in GeV in any
    frame, on shell (massless electrons, muons of mass m_mu, real photon) and conserving
    momentum. Evaluated with the FORM-generated expression
    (:mod:`zprime.generators._mumugamma_me_generated`).

    Parameters
    ----------
    p1, p2, q1, q2, k
        Four-momenta of the e-, e+, mu-, mu+ and photon.
    alpha
        Fine-structure constant of the three vertices (default alpha(0)).
    parts
        Return the ISR, FSR and interference parts separately (they sum to |M|^2).
    """
    p1, p2, q1, q2, k = (np.asarray(v, dtype=np.float64) for v in (p1, p2, q1, q2, k))
    e6_4 = (4.0 * math.pi * alpha) ** 3 / 4.0
    ti, tf, tx = _parts(p1, p2, q1, q2, k)
    if parts:
        return e6_4 * ti, e6_4 * tf, e6_4 * tx
    return e6_4 * (ti + tf + tx)  # type: ignore[no-any-return]


def born_cross_section(s: ArrayLike, alpha: float = ALPHA_0) -> Array:
    """Born sigma(e+e- -> mu+ mu-) in GeV^-2 with the muon mass: 4 pi alpha^2/(3s) b(3 - b^2)/2."""
    s = np.asarray(s, dtype=np.float64)
    b2 = np.clip(1.0 - 4.0 * _M2 / s, 0.0, None)
    b = np.sqrt(b2)
    return 4.0 * math.pi * alpha**2 / (3.0 * s) * b * (3.0 - b2) / 2.0  # type: ignore[no-any-return]


def _beam_velocity(e_beam: float, m: float = M_ELECTRON) -> tuple[float, float]:
    """1 - b and 1 + b of a beam lepton of energy ``e_beam``, without cancellation."""
    r = (m / e_beam) ** 2
    one_minus = r / (1.0 + math.sqrt(1.0 - r))
    return one_minus, 2.0 - one_minus


def ll_angle_density(one_minus_c: ArrayLike, e_beam: float = 0.5 * SQRT_S) -> Array:
    """Leading-log angular density of a photon about its beam, ``1/t - (1 - b^2)/(2 t^2)``.

    ``t = 1 - b cos(theta) = (1 - b) + b (1 - cos)``, b the velocity of the beam electron of
    energy ``e_beam``; given ``1 - cos(theta)`` so that small angles keep their precision. Not
    normalised: its integral over cos(theta) in [-1, 1] is ``ln((1+b)/(1-b))/b - 1``, i.e.
    ``ln(4 E^2/m_e^2) - 1`` and ``beta = (2 alpha/pi)`` times it.
    """
    omc = np.asarray(one_minus_c, dtype=np.float64)
    one_minus_b, one_plus_b = _beam_velocity(e_beam)
    b = 1.0 - one_minus_b
    t = one_minus_b + b * omc
    return 1.0 / t - one_minus_b * one_plus_b / (2.0 * t * t)  # type: ignore[no-any-return]


def sample_ll_angle(u: ArrayLike, e_beam: float = 0.5 * SQRT_S) -> tuple[Array, Array, Array]:
    """Map uniform ``u`` to photon angles about the beam with :func:`ll_angle_density`.

    ``t = 1 - b cos`` is log-uniform in [1 - b, 1 + b]; the weight is the density over that of
    the sampling, normalised, ``L (1 - (1 - b^2)/(2t)) / (L - b)`` with ``L = ln((1+b)/(1-b))``
    (between 0 and L/(L - b), 1.053 at 5.29 GeV), so that ``E_u[weight g] = int p(c) g(c) dc``
    for the normalised density p.

    Returns
    -------
    one_minus_c, one_plus_c, weight
        ``1 - cos(theta)`` and ``1 + cos(theta)``, each without cancellation, and the weight.
    """
    u = np.asarray(u, dtype=np.float64)
    one_minus_b, one_plus_b = _beam_velocity(e_beam)
    b = 1.0 - one_minus_b
    big_l = math.log(one_plus_b / one_minus_b)
    t = one_minus_b * np.exp(u * big_l)
    one_minus_c = one_minus_b * np.expm1(u * big_l) / b
    one_plus_c = -one_plus_b * np.expm1(-(1.0 - u) * big_l) / b
    weight = big_l * (1.0 - one_minus_b * one_plus_b / (2.0 * t)) / (big_l - b)
    return one_minus_c, one_plus_c, weight


@functools.lru_cache(maxsize=16)
def sigma_sf(m_min: float = 0.3, alpha: float = ALPHA_0) -> float:
    """Inclusive structure-function cross section in fb, ``int dv W(v) sigma_Born(s(1-v))``.

    ``W`` the two-leg radiator of :mod:`zprime.generators.isr` (full beta), ``v < 1 - m_min^2/s``.
    Gauss-Legendre in ``t = v^beta`` below v = 0.5 (the ``v^(beta-1)`` peak) and in
    ``ln(1 - v)`` above (the ``1/s'`` rise of the Born cross section).
    """
    b = beta_isr(_S, alpha)
    v_max = 1.0 - m_min**2 / _S
    x, w = np.polynomial.legendre.leggauss(400)
    # v in [0, 0.5]: soft part of W integrated analytically in t = v^b, hard part directly
    t_hi = 0.5**b
    t = 0.5 * t_hi * (x + 1.0)
    v = t ** (1.0 / b)
    soft = np.sum(0.5 * t_hi * w * (1.0 + 0.75 * b) * born_cross_section(_S * (1.0 - v), alpha))
    v_lin = 0.25 * (x + 1.0)
    hard = np.sum(
        0.25 * w * (-b * (1.0 - 0.5 * v_lin)) * born_cross_section(_S * (1.0 - v_lin), alpha)
    )
    # v in [0.5, v_max]: y = ln(1 - v) flat
    y_lo, y_hi = math.log(1.0 - v_max), math.log(0.5)
    y = y_lo + 0.5 * (y_hi - y_lo) * (x + 1.0)
    v2 = 1.0 - np.exp(y)
    jac = 0.5 * (y_hi - y_lo) * np.exp(y)
    upper = np.sum(w * jac * radiator(v2, _S, alpha) * born_cross_section(_S * (1.0 - v2), alpha))
    return float((soft + hard + upper) * GEV2_TO_FB)


# --------------------------------------------------------------------------------------------
# phase space


# --------------------------------------------------------------------------------------------
# phase space


class _Point(NamedTuple):
    """A batch of phase-space points."""

    f: Array
    """cross section times the Jacobian of the analytic maps, fb (0 outside the cuts; no K)"""
    pdg: NDArray[np.int32]
    """(n, 5) mu-, mu+, hard gamma, SF gamma (e- side), SF gamma (e+ side); 0 = absent"""
    p4: Array
    """(n, 5, 4) lab four-momenta"""
    escape: NDArray[np.bool_]
    """the event can pass the photon veto (r = 1)"""
    sqrt_s_hat: Array
    e_gamma_cm: Array
    pt_hard: Array
    """p_T of the matrix-element photon to the beam axis of the hard frame"""
    pt_isr: Array
    """(n, 2) p_T of the structure-function photons to their beams (c.m. frame)"""
    vetoed: NDArray[np.bool_]
    """a structure-function photon has the larger p_T (weight 0 by the ordering)"""


def _sf_loss(u: Array, b: float) -> tuple[Array, Array]:
    """Structure function D(x) with beta = b sampled as in
    zprime.generators.isr.sample_energy_loss."""
    v = np.power(u, 2.0 / b)
    weight = (1.0 + 0.375 * b) - 0.5 * (2.0 - v) * np.power(v, 1.0 - 0.5 * b)
    return v, weight


def _detected(p4_lab: Array) -> NDArray[np.bool_]:
    """Whether photons of lab momenta ``p4_lab`` (..., 4) are detected in the ECL."""
    th = np.degrees(np.arctan2(np.hypot(p4_lab[..., 1], p4_lab[..., 2]), p4_lab[..., 3]))
    out = (th > _ECL_RANGE_DEG[0]) & (th < _ECL_RANGE_DEG[1]) & (p4_lab[..., 0] > _E_UNDETECTED_GEV)
    for lo, hi in _ECL_GAPS_DEG:
        out &= ~((th > lo) & (th < hi))
    return out


def _passes_veto(p4_lab: Array, pdg: NDArray[np.int32]) -> NDArray[np.bool_]:
    """Whether an event (n, k, 4) can pass the preselection's photon and recoil cuts.

    A truth-level emulation with margins (PRL 130, 231801;
    zprime.analyses.invisible_zprime.selection): the detected
    photons sum to less than 0.6 GeV (the veto: 0.5 GeV) and none lies within 10 deg of the
    recoil against the muon pair (15 deg); and below M_recoil^2 = 3 GeV^2 (the selection's
    split: 4 GeV^2) the recoil points into 31-126 deg (the ECL barrel cut, 34-123 deg). It only
    steers the sampling density (r), never a weight: a misclassified event costs statistics.
    """
    det = _detected(p4_lab) & (pdg == 22)
    ok = np.sum(np.where(det, p4_lab[..., 0], 0.0), axis=1) < _E_VETO_GEV
    muons = np.abs(pdg) == 13
    rec = np.asarray(P_BEAMS_LAB) - np.sum(np.where(muons[..., None], p4_lab, 0.0), axis=1)
    m2 = rec[:, 0] ** 2 - np.sum(rec[:, 1:] ** 2, axis=1)
    prec = np.linalg.norm(rec[:, 1:], axis=1)
    th_rec = np.degrees(np.arctan2(np.hypot(rec[:, 1], rec[:, 2]), rec[:, 3]))
    ok &= (m2 > _M2_SPLIT_GEV2) | ((th_rec > _BARREL_DEG[0]) & (th_rec < _BARREL_DEG[1]))
    pg = np.linalg.norm(p4_lab[..., 1:], axis=-1)
    cos = np.sum(p4_lab[..., 1:] * rec[:, None, 1:], axis=-1) / np.maximum(
        pg * prec[:, None], 1e-12
    )
    near = det & (cos > math.cos(math.radians(_VETO_CONE_DEG)))
    return ok & ~np.any(near, axis=1)  # type: ignore[no-any-return]


def _boost(p: Array, bv: Array) -> Array:
    """Boost (n, k, 4) momenta from the rest frame of a system of velocity ``bv`` (n, 3)."""
    b2 = np.sum(bv * bv, axis=-1)
    g = 1.0 / np.sqrt(1.0 - b2)
    gg = g * g / (1.0 + g)  # (gamma - 1)/beta^2 without 0/0
    bp = np.sum(bv[:, None, :] * p[..., 1:], axis=-1)
    out = np.empty_like(p)
    out[..., 0] = g[:, None] * (p[..., 0] + bp)
    out[..., 1:] = (
        p[..., 1:] + ((gg[:, None] * bp + g[:, None] * p[..., 0])[..., None]) * bv[:, None, :]
    )
    return out


def _basis(nz: Array) -> tuple[Array, Array]:
    """Two unit vectors completing the unit vectors ``nz`` (n, 3) to right-handed bases.

    T. Duff et al., J. Computer Graphics Techniques 6 (2017) 1 (branchless, any direction).
    """
    x, y, z = nz[:, 0], nz[:, 1], nz[:, 2]
    sign = np.where(z >= 0.0, 1.0, -1.0)
    a = -1.0 / (sign + z)
    b = x * y * a
    e1 = np.stack([1.0 + sign * x * x * a, sign * b, -sign * x], axis=-1)
    e2 = np.stack([b, sign + y * y * a, -y], axis=-1)
    return e1, e2


def _kernel(y: Array, u: Array, o: Mapping[str, Any], amap: vegas.AdaptiveMap) -> _Point:
    """Map uniform ``y`` (n, 6) (through the vegas map) and ``u`` (n, 6) to weighted events.

    The returned ``f`` is the cross section over the sampling density of the point, ``f/g``.
    The muon direction in the mu mu rest frame comes from one of two channels (``u[:, 3]``):
    (A) about the photon direction, flat in atanh(beta cos) (the FSR peaks), azimuth measured
    from the plane of the beam and the photon; (B) about the beam axis, flat in cos (the
    isotropic part, along which the filter's muon acceptance is nearly a cut on one vegas
    variable), azimuth measured from the photon's. ``g`` is the mean of the two channel
    densities, each with the vegas Jacobian at that channel's coordinates of the same point
    (:meth:`vegas.AdaptiveMap.invmap`), so the weights are exact.
    """
    n = y.shape[0]
    x = np.empty_like(y)
    jac = np.empty(n)
    amap.map(y, x, jac)
    two_pi = 2.0 * math.pi
    e_beam = 0.5 * SQRT_S
    m_min = o["m_mumu_min_gev"]
    pt_min = o["pt_gamma_min_gev"]
    # structure-function photons: energies (full beta) and leading-log angles about the beams
    b = beta_isr(_S)
    v1, w1 = _sf_loss(x[:, 0], b)
    v2, w2 = _sf_loss(x[:, 1], b)
    omc1, opc1, a1 = sample_ll_angle(u[:, 4], e_beam)
    omc2, opc2, a2 = sample_ll_angle(u[:, 5], e_beam)
    sin1 = np.sqrt(omc1 * opc1)
    sin2 = np.sqrt(omc2 * opc2)
    ph1, ph2 = two_pi * u[:, 1], two_pi * u[:, 2]
    e1_, e2_ = v1 * e_beam, v2 * e_beam
    sf = np.empty((n, 2, 4))
    sf[:, 0, 0] = e1_
    sf[:, 0, 1] = e1_ * sin1 * np.cos(ph1)
    sf[:, 0, 2] = e1_ * sin1 * np.sin(ph1)
    sf[:, 0, 3] = e1_ * (1.0 - omc1)
    sf[:, 1, 0] = e2_
    sf[:, 1, 1] = e2_ * sin2 * np.cos(ph2)
    sf[:, 1, 2] = e2_ * sin2 * np.sin(ph2)
    sf[:, 1, 3] = -e2_ * (1.0 - omc2)
    pt_isr = np.stack([e1_ * sin1, e2_ * sin2], axis=-1)
    # the hard system Q = P_cm - k1 - k2
    big_q = -sf.sum(axis=1)
    big_q[:, 0] += SQRT_S
    s_hat = big_q[:, 0] ** 2 - np.sum(big_q[:, 1:] ** 2, axis=-1)
    ok = s_hat > m_min**2
    s_hat = np.where(ok, s_hat, 4.0 * m_min**2)
    w_cm = np.sqrt(s_hat)
    bq = big_q[:, 1:] / big_q[:, :1]
    bq = np.where(ok[:, None], bq, 0.0)
    # beam axis of the hard frame: the reduced electron p1 - k1 in the rest frame of Q
    red = np.empty((n, 1, 4))
    red[:, 0, 0] = e_beam - sf[:, 0, 0]
    red[:, 0, 1:] = -sf[:, 0, 1:]
    red[:, 0, 3] += e_beam
    red = _boost(red, -bq)[:, 0, 1:]
    axis = red / np.linalg.norm(red, axis=-1, keepdims=True)
    ax1, ax2 = _basis(axis)
    # matrix-element photon in the hard frame: log p_T flat, y = atanh(cos) flat in |y| < Y
    e_max = (s_hat - m_min**2) / (2.0 * w_cm)
    ok &= e_max > pt_min
    log_r = np.log(np.where(ok, e_max, 2.0 * pt_min) / pt_min)
    pt = pt_min * np.exp(x[:, 2] * log_r)
    y_max = np.arccosh(np.maximum(np.where(ok, e_max, 2.0 * pt_min) / pt, 1.0))
    yy = (2.0 * x[:, 3] - 1.0) * y_max
    ch = np.cosh(yy)
    cg = np.tanh(yy)
    sg = 1.0 / ch
    omega = pt * ch
    d_omega_cg = pt * log_r * 2.0 * y_max * sg  # d omega d cos per unit of x4 x5
    phi = two_pi * u[:, 0]
    cphi, sphi = np.cos(phi), np.sin(phi)
    khat = np.stack([sg * cphi, sg * sphi, cg], axis=-1)
    vetoed = (pt_isr[:, 0] > pt) | (pt_isr[:, 1] > pt)
    # the mu mu system: mass, muon speed in its rest frame
    q2 = s_hat - 2.0 * w_cm * omega
    mass = np.sqrt(np.maximum(q2, 4.0 * _M2 * (1.0 + 1e-12)))
    p_star = np.sqrt(np.maximum(0.25 * mass * mass - _M2, 0.0))
    beta = np.minimum(2.0 * p_star / mass, 1.0 - 1e-15)
    z_max = np.arctanh(beta)
    # channel A frame: khat, e1 in the plane of the beam and khat, e2; channel B: z, and the
    # azimuth measured from the photon's (f1 along the photon's transverse direction)
    zax = np.array([0.0, 0.0, 1.0])
    e1 = zax - cg[:, None] * khat
    e1 /= np.linalg.norm(e1, axis=-1, keepdims=True)
    e2 = np.cross(khat, e1)
    f1 = np.stack([cphi, sphi, np.zeros(n)], axis=-1)
    f2 = np.stack([-sphi, cphi, np.zeros(n)], axis=-1)
    chan_a = u[:, 3] < 0.5
    c_a = np.tanh((2.0 * x[:, 4] - 1.0) * z_max) / beta
    c_b = 2.0 * x[:, 4] - 1.0
    cs = np.clip(np.where(chan_a, c_a, c_b), -1.0, 1.0)
    ss = np.sqrt(np.maximum((1.0 - cs) * (1.0 + cs), 0.0))
    phs = two_pi * x[:, 5]
    b0 = np.where(chan_a[:, None], khat, zax)
    b1 = np.where(chan_a[:, None], e1, f1)
    b2 = np.where(chan_a[:, None], e2, f2)
    nstar = cs[:, None] * b0 + (ss * np.cos(phs))[:, None] * b1 + (ss * np.sin(phs))[:, None] * b2
    # the point's coordinates in both channels, and their densities per unit solid angle
    cos_a = np.clip(np.sum(nstar * khat, axis=-1), -1.0, 1.0)
    phi_a = np.mod(np.arctan2(np.sum(nstar * e2, axis=-1), np.sum(nstar * e1, axis=-1)), two_pi)
    cos_b = np.clip(nstar[:, 2], -1.0, 1.0)
    phi_b = np.mod(np.arctan2(np.sum(nstar * f2, axis=-1), np.sum(nstar * f1, axis=-1)), two_pi)
    dens = np.zeros(n)
    for xc4, xc5, rho in (
        (
            0.5 * (np.arctanh(beta * cos_a) / z_max + 1.0),
            phi_a / two_pi,
            beta / (2.0 * z_max * (1.0 - (beta * cos_a) ** 2)) / two_pi,
        ),
        (0.5 * (cos_b + 1.0), phi_b / two_pi, np.full(n, 0.5 / two_pi)),
    ):
        xc = x.copy()
        xc[:, 4] = np.clip(xc4, 0.0, 1.0)
        xc[:, 5] = np.clip(xc5, 0.0, 1.0)
        yc = np.empty_like(xc)
        jc = np.empty(n)
        amap.invmap(xc, yc, jc)
        dens += 0.5 * rho / jc
    # boost pair frame -> hard frame: the pair moves along -khat, gamma = (W - w)/m
    g = (w_cm - omega) / mass
    gb = omega / mass
    pn = -p_star * cos_a  # component of the mu- momentum along the boost direction -khat
    e_mu = 0.5 * mass
    hard = np.empty((n, 3, 4))
    along = (g - 1.0) * pn + gb * e_mu  # added along -khat
    hard[:, 0, 0] = g * e_mu + gb * pn
    hard[:, 1, 0] = g * e_mu - gb * pn
    hard[:, 0, 1:] = p_star[:, None] * nstar - along[:, None] * khat
    along2 = (g - 1.0) * (-pn) + gb * e_mu
    hard[:, 1, 1:] = -p_star[:, None] * nstar - along2[:, None] * khat
    hard[:, 2, 0] = omega
    hard[:, 2, 1:] = omega[:, None] * khat
    half = 0.5 * w_cm
    p1 = np.zeros((n, 4))
    p2 = np.zeros((n, 4))
    p1[:, 0] = p1[:, 3] = half
    p2[:, 0] = half
    p2[:, 3] = -half
    me2 = matrix_element_squared(p1, p2, hard[:, 0], hard[:, 1], hard[:, 2])
    # dPhi3 = [w/(16 pi^2 W)] dOmega_g [2 W dw/(2 pi)] [beta/(32 pi^2)] dOmega*, per unit of
    # the sampling density (dens: of y -> (x2, x3, Omega*), vegas Jacobian included)
    dphi3 = (
        omega
        / (16.0 * math.pi**2 * w_cm)
        * two_pi
        * (2.0 * w_cm * d_omega_cg / two_pi)
        * beta
        / (32.0 * math.pi**2)
        / dens
    )
    ok &= q2 > m_min**2
    f = np.where(ok & ~vetoed, w1 * w2 * a1 * a2 * me2 * dphi3 / (2.0 * s_hat), 0.0)
    f = np.nan_to_num(f, nan=0.0, posinf=0.0) * GEV2_TO_FB
    # hard frame (beam axis along z) -> rest frame of Q (beam axis along `axis`) -> c.m. -> lab
    rot = np.empty_like(hard)
    rot[..., 0] = hard[..., 0]
    rot[..., 1:] = (
        hard[..., 1:2] * ax1[:, None, :]
        + hard[..., 2:3] * ax2[:, None, :]
        + hard[..., 3:4] * axis[:, None, :]
    )
    cm = _boost(rot, bq)
    p4 = cm_to_lab(np.concatenate([cm, sf], axis=1))
    pdg = np.empty((n, 5), dtype=np.int32)
    pdg[:, 0], pdg[:, 1], pdg[:, 2] = 13, -13, 22
    pdg[:, 3] = np.where(v1 > 0.0, 22, 0)
    pdg[:, 4] = np.where(v2 > 0.0, 22, 0)
    return _Point(f, pdg, p4, _passes_veto(p4, pdg), w_cm, cm[:, 2, 0], pt, pt_isr, vetoed & ok)


def _target(point: _Point, filt: Mapping[str, Any] | None, r: float) -> tuple[Array, Any]:
    """f filter r, and the filter mask."""
    passed = (
        filter_mask(point.pdg, point.p4, filt)
        if filt is not None
        else np.ones(point.f.shape[0], dtype=bool)
    )
    return np.where(passed, point.f * np.where(point.escape, 1.0, r), 0.0), passed


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _physics_options(opts: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in opts.items() if k != "target_weight_fb"}


@functools.lru_cache(maxsize=16)
def _trained(frozen_opts: Any, frozen_filt: Any) -> tuple[vegas.AdaptiveMap, dict[str, float]]:
    """Vegas map adapted to the target density, and integrals from a fixed-seed pass (cached)."""
    opts = dict(frozen_opts)
    filt = _thaw(frozen_filt)
    r = float(opts["detected_photon_suppression"])
    rng = np.random.default_rng(_TRAIN_SEED)
    amap = vegas.AdaptiveMap([[0.0, 1.0]] * _DIM, ninc=_N_INCREMENTS)
    y = np.empty((_TRAIN_POINTS, _DIM))
    for _ in range(_TRAIN_ITERATIONS):
        y = rng.random((_TRAIN_POINTS, _DIM))
        t, _ = _target(_kernel(y, rng.random((_TRAIN_POINTS, _N_EXTRA)), opts, amap), filt, r)
        amap.add_training_data(y, t * t)
        amap.adapt(alpha=0.5)
    # integration pass: sigma_equivalent, filtered hard cross section, weight distribution
    k_factor = float(opts["_k_factor"])
    sums = dict.fromkeys(("eq", "eq2", "filt", "filt2", "all", "n_above", "kept"), 0.0)
    w_pts: list[Array] = []
    esc: list[Array] = []
    done = 0
    while done < _INTEGRATION_POINTS:
        m = min(_BATCH, _INTEGRATION_POINTS - done)
        yy = rng.random((m, _DIM))
        point = _kernel(yy, rng.random((m, _N_EXTRA)), opts, amap)
        t, passed = _target(point, filt, r)
        t = t * k_factor
        fk = point.f * k_factor
        esc.append(point.escape[passed & (fk > 0.0)])
        sums["eq"] += float(t.sum())
        sums["eq2"] += float(np.sum(t * t))
        sums["filt"] += float(np.sum(fk[passed]))
        sums["filt2"] += float(np.sum(fk[passed] ** 2))
        sums["all"] += float(fk.sum())
        w_pts.append(fk[passed & (fk > 0.0)])
        done += m
    n = _INTEGRATION_POINTS
    sigma_target = sums["eq"] / n
    w_all = np.concatenate(w_pts)
    escape = np.concatenate(esc)
    # The mean per-point weight f K / g of the kept r = 1 events (those that can pass the photon
    # veto): with N points they weigh (mean)/N, so N = luminosity_factor L sigma_equivalent gives
    # them 1/(luminosity_factor L) on average. It equals sigma_target for a perfect map and is
    # larger by the inverse sampling efficiency of the (separable) vegas map otherwise.
    sigma_eq = float(w_all[escape].mean()) if np.any(escape) else sigma_target
    ratio = w_all / sigma_eq  # w / w_t for the driver's N = ceil(sigma_eq / w_t)
    r_of = np.where(escape, 1.0, r)
    kept_each = np.minimum(ratio * r_of, 1.0)  # kept toward the design weight w_t / r
    kept = float(np.sum(kept_each))
    info = {
        "sigma_equivalent_fb": sigma_eq,
        "sigma_target_fb": sigma_target,
        "sigma_target_err_fb": math.sqrt(max(sums["eq2"] / n - sigma_target**2, 0.0) / n),
        "sampling_efficiency": sigma_target / sigma_eq,
        "sigma_hard_filtered_fb": sums["filt"] / n,
        "sigma_hard_filtered_err_fb": math.sqrt(
            max(sums["filt2"] / n - (sums["filt"] / n) ** 2, 0.0) / n
        ),
        "sigma_hard_fb": sums["all"] / n,
        "fraction_above_target_weight": float(np.sum(ratio > 1.0)) / kept if kept > 0 else 0.0,
        # above the design weight (w_t where the event can pass the veto, w_t / r elsewhere)
        "fraction_above_design_weight": (
            float(np.sum(ratio * r_of > 1.0)) / kept if kept > 0 else 0.0
        ),
        "fraction_escaping_photon": (float(np.sum(kept_each[escape])) / kept if kept > 0 else 0.0),
        "max_weight_over_target": float(ratio.max()) if ratio.size else 0.0,
        "kept_per_point": kept / n,
    }
    return amap, info


def _thaw(frozen: Any) -> Any:
    if frozen is None:
        return None
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in frozen}


def _setup(
    opts: Mapping[str, Any], filt: Mapping[str, Any] | None
) -> tuple[vegas.AdaptiveMap, dict[str, float], float, dict[str, Any]]:
    k_factor = hard_k_factor(opts)
    phys = _physics_options(opts)
    phys["_k_factor"] = k_factor
    amap, info = _trained(_freeze(phys), _freeze(filt) if filt is not None else None)
    return amap, info, k_factor, phys


def hard_k_factor(opts: Mapping[str, Any], xsec_ref_fb: float = 1.148e6) -> float:
    """K = xsec_ref_fb / sigma_SF (the normalisation of every hard event)."""
    return float(opts.get("_xsec_ref_fb", xsec_ref_fb)) / sigma_sf(float(opts["m_mumu_min_gev"]))


def hard_cross_section(
    options: Mapping[str, Any] | None, filt: Mapping[str, Any] | None = None
) -> dict[str, float]:
    """Integrals of the trained sample (fb, K included): see :func:`describe`."""
    opts = resolve_options({"options": dict(options or {})})
    return dict(_setup(opts, filt)[1])


# --------------------------------------------------------------------------------------------
# generation


def generate(
    n: int,
    rng: np.random.Generator,
    options: Mapping[str, Any] | None = None,
    filt: Mapping[str, Any] | None = None,
    *,
    xsec_ref_fb: float = 1.148e6,
) -> dict[str, Any]:
    """Generate ``n`` phase-space points (no filter applied, no unweighting).

    Parameters
    ----------
    n
        Points to generate.
    rng
        Random generator.
    options
        Generator options (:data:`OPTION_DOCS`).
    filt
        Filter the vegas map is trained for (``None``: none); its mask is returned.
    xsec_ref_fb
        Reference cross section of the normalisation.

    Returns
    -------
    dict
        ``pdg`` (n, 5) and ``p4`` (n, 5, 4) lab frame (mu-, mu+, matrix-element gamma, then
        the structure-function photons of the e- and the e+, pdg 0 when absent), ``weight``
        (fb, ``f K / (g n)``, the sum estimates the hard cross section), ``passed`` (filter
        mask), ``escape`` (the event can pass the photon veto: r = 1), ``target``
        (``f filter r K / (g n)``), ``sqrt_s_hat``, ``e_gamma_hard_cm``, ``pt_gamma_hard``
        (p_T of the matrix-element photon in the hard frame), ``pt_isr`` (n, 2) (p_T of the
        structure-function photons to their beams, c.m. frame) and ``vetoed`` (weight 0 by the
        p_T ordering).
    """
    opts = resolve_options({"options": dict(options or {})})
    opts["_xsec_ref_fb"] = xsec_ref_fb
    amap, _, k_factor, phys = _setup(opts, filt)
    r = float(opts["detected_photon_suppression"])
    y = rng.random((n, _DIM))
    extra = rng.random((n, _N_EXTRA))
    point = _kernel(y, extra, phys, amap)
    target, passed = _target(point, filt, r)
    return {
        "pdg": point.pdg,
        "p4": point.p4,
        "weight": point.f * k_factor / n,
        "target": target * k_factor / n,
        "passed": passed,
        "escape": point.escape,
        "sqrt_s_hat": point.sqrt_s_hat,
        "e_gamma_hard_cm": point.e_gamma_cm,
        "pt_gamma_hard": point.pt_hard,
        "pt_isr": point.pt_isr,
        "vetoed": point.vetoed,
    }


def chunk(settings: Mapping[str, Any], n_generate: int, seed: int) -> ChunkResult:
    """Generate one chunk of e+e- -> mu+ mu- (gamma) (the chunk interface of backgrounds).

    Parameters
    ----------
    settings
        :func:`zprime.generators.backgrounds.sample_settings` of the sample: ``options`` (see
        :data:`OPTION_DOCS`), ``filter``, ``xsec_ref_fb``, ``normalisation`` (``reference``),
        and ``target_weight_fb`` (set by the driver; enables the partial unweighting).
        ``n_total`` (optional) is the number of points of the whole sample; without it the
        driver's ``ceil(sigma_equivalent_fb / target_weight_fb)`` is assumed.
    n_generate
        Phase-space points to try in this chunk.
    seed
        Seed of :func:`numpy.random.default_rng`.

    Returns
    -------
    zprime.generators.chunk.ChunkResult
        The kept events (particles mu-, mu+, photons in the lab; truth ``sqrt_s_hat`` after the
        structure-function ISR and ``e_gamma_hard_cm``) with weights in fb that sum to the Monte
        Carlo estimate of the filtered cross section (``f K / (g n_generate)``, before the
        driver's n_k/N), ``n_generate``, and the hard cross section (K included, before the
        filter) with its statistical error.
    """
    name = settings.get("name", "mumu")
    if n_generate <= 0:
        raise InputError(f"background sample '{name}': n_generate must be positive")
    opts = resolve_options(settings)
    check_filter(settings, opts)
    opts["_xsec_ref_fb"] = float(settings.get("xsec_ref_fb") or 1.148e6)
    filt = settings.get("filter")
    amap, info, k_factor, phys = _setup(opts, filt)
    r = float(opts["detected_photon_suppression"])
    w_t = opts["target_weight_fb"]
    threshold = None  # in units of the per-point weight f K / g
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
        y = rng.random((m, _DIM))
        extra = rng.random((m, _N_EXTRA))
        u_keep = rng.random(m)
        point = _kernel(y, extra, phys, amap)
        w_pt = point.f * k_factor
        sum_w += float(w_pt.sum())
        sum_w2 += float(np.sum(w_pt * w_pt))
        passed = filter_mask(point.pdg, point.p4, filt) if filt is not None else np.ones(m, bool)
        keep = passed & (w_pt > 0.0)
        if threshold is not None:
            # each region is unweighted toward its design weight: w_t where the event can pass
            # the photon veto, w_t / r where it cannot (it is sampled r times more sparsely)
            thr = np.where(point.escape, threshold, threshold / r)
            keep &= u_keep * thr < w_pt
            w_pt = np.where(keep, np.maximum(w_pt, thr), w_pt)
        index = np.flatnonzero(keep)
        pdg = point.pdg[index]
        present = pdg != 0
        particles = make_particles(
            pdg[present], point.p4[index][present], counts=present.sum(axis=1)
        )
        parts.append(
            ak.to_packed(
                ak.zip(
                    {
                        "event": (done + index).astype(np.int64),
                        "weight": w_pt[index] / n_generate,
                        "particles": particles,
                        "sqrt_s_hat": point.sqrt_s_hat[index],
                        "e_gamma_hard_cm": point.e_gamma_cm[index],
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
    del r
    return ChunkResult(ak.to_packed(events), int(n_generate), sigma, err)


def describe(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the settings and describe the generator (the backgrounds hook).

    Returns
    -------
    dict
        ``generator``, ``br_weight`` (1.0), ``sigma_equivalent_fb`` (the integral of the target
        density ``f filter r K``: the driver generates ``luminosity_factor L sigma_equivalent``
        points, so that events that can pass the photon veto get weights near
        ``1/(luminosity_factor L)``), ``sigma_sf_fb``, ``k_factor``, ``sigma_hard_filtered_fb``
        (the filtered cross section the sample estimates, K included), ``sigma_hard_fb`` (before
        the filter),
        ``fraction_above_target_weight`` and ``max_weight_over_target`` (expected for the
        driver's target weight), ``mumu_options``.

    Raises
    ------
    ConfigError
        For a wrong option, a normalisation other than ``reference``, or a filter that could pass
        events the generator does not generate (:func:`check_filter`).
    """
    opts = resolve_options(settings)
    if settings.get("normalisation", "reference") != "reference":
        raise ConfigError(
            f"backgrounds.samples.{settings.get('name', 'mumu')}.normalisation must be "
            "'reference' for zprime.generators.mumu (normalised to xsec_ref_fb via sigma_SF)"
        )
    check_filter(settings, opts)
    opts["_xsec_ref_fb"] = float(settings.get("xsec_ref_fb") or 1.148e6)
    _, info, k_factor, _ = _setup(opts, settings.get("filter"))
    return {
        "generator": f"zprime.generators.mumu (exact O(alpha) mu mu gamma, p_T-ordered SF ISR, "
        f"vegas "
        f"{vegas.__version__})",
        "br_weight": 1.0,
        "sigma_sf_fb": sigma_sf(float(opts["m_mumu_min_gev"])),
        "k_factor": k_factor,
        **info,
        "mumu_options": {k: v for k, v in opts.items() if not k.startswith("_")},
    }
