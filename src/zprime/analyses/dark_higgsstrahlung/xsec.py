"""Cross sections of the dark Higgsstrahlung search: sigma(e+e- -> A' h'), B(A' -> mu mu) and
their product at one (M_A', M_h') point or over the simulated grid.

sigma is for epsilon^2 alpha_D = 1 (it scales with that product), with the ISR convolution of
:func:`zprime.generators.aprime_hdark.sigma_fb` or, with ``isr=False``, the Born formula of
:func:`zprime.physics.dark_higgs.sigma_born_fb`; B(A' -> mu mu) comes from the R ratio
(:func:`zprime.physics.dark_higgs.br_mumu`) with its uncertainty (the paper assigns 4%,
:data:`zprime.physics.dark_higgs.BR_MUMU_REL_UNCERTAINTY`). ``zprime xsec --analysis
dark-higgsstrahlung`` prints :func:`point_xsec`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from zprime.generators.aprime_hdark import sigma_fb
from zprime.physics.constants import SQRT_S
from zprime.physics.dark_higgs import (
    DEFAULT_VETO_HALF_WIDTH_GEV,
    br_mumu,
    br_mumu_uncertainty,
    check_masses,
)

__all__ = ["XSEC_COLUMNS", "point_xsec", "xsec_rows"]

XSEC_COLUMNS = (
    "m_aprime_gev",
    "m_hdark_gev",
    "isr",
    "sigma_fb",
    "sigma_error_fb",
    "br_mumu",
    "br_mumu_uncertainty",
    "sigma_br_fb",
)
"""The fields of :func:`point_xsec` and the columns of the run's ``xsec.csv``."""


def point_xsec(
    m_aprime: float,
    m_hdark: float,
    *,
    isr: bool = True,
    sqrt_s: float = SQRT_S,
    veto_half_width: float | Mapping[str, float] = DEFAULT_VETO_HALF_WIDTH_GEV,
) -> dict[str, Any]:
    """sigma(e+e- -> A' h'), B(A' -> mu mu) and sigma x B at one point, epsilon^2 alpha_D = 1.

    Parameters
    ----------
    m_aprime, m_hdark
        Dark photon and dark Higgs masses, GeV.
    isr
        With the ISR structure function (default) or Born.
    sqrt_s
        Nominal c.m. energy, GeV.
    veto_half_width
        Half-width of the vetoed M_A' intervals around the narrow resonances, GeV.

    Returns
    -------
    dict
        The fields of :data:`XSEC_COLUMNS` (fb; ``br_mumu_uncertainty`` absolute).

    Raises
    ------
    ConfigError
        One line naming the value: M_h' >= M_A', M_A' + M_h' >= sqrt(s), a mass in a vetoed
        resonance region, a negative or non-finite mass.
    """
    check_masses(m_aprime, m_hdark, sqrt_s=sqrt_s, half_width=veto_half_width)
    sig = sigma_fb(m_aprime, m_hdark, isr=isr, sqrt_s=sqrt_s)
    br = float(br_mumu(m_aprime))
    return {
        "m_aprime_gev": float(m_aprime),
        "m_hdark_gev": float(m_hdark),
        "isr": bool(isr),
        "sigma_fb": float(sig.sigma_fb),
        "sigma_error_fb": float(sig.error_fb),
        "br_mumu": br,
        "br_mumu_uncertainty": float(br_mumu_uncertainty(m_aprime)),
        "sigma_br_fb": float(sig.sigma_fb) * br,
    }


def xsec_rows(
    points: Iterable[tuple[float, float]],
    *,
    isr: bool = True,
    sqrt_s: float = SQRT_S,
    veto_half_width: float | Mapping[str, float] = DEFAULT_VETO_HALF_WIDTH_GEV,
) -> list[dict[str, Any]]:
    """:func:`point_xsec` at every ``(M_A', M_h')`` of ``points`` (a few ms each)."""
    return [
        point_xsec(ma, mh, isr=isr, sqrt_s=sqrt_s, veto_half_width=veto_half_width)
        for ma, mh in points
    ]
