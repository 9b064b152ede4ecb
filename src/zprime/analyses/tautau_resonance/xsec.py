"""sigma(e+e- -> mu+ mu- X) x B(X -> tau tau) at one point of the tau-tau resonance search
(``zprime xsec --analysis tautau-resonance``)."""

from __future__ import annotations

import math
from typing import Any

from zprime.analyses.tautau_resonance.stages import SPIN_OF
from zprime.errors import ConfigError
from zprime.physics.leptophilic import (
    COUPLING_NAMES,
    branching_tautau,
    check_analysis_mass,
    check_model,
    vertex_coupling,
)
from zprime.physics.xsec_table import load_xsec_table, spin_table_path

__all__ = ["point_xsec"]


def point_xsec(
    model: str, mass: float, coupling: float = 1.0, *, isr: bool = True
) -> dict[str, Any]:
    """sigma(e+e- -> mu mu X) at the model coupling (from the shipped tables at unit muon
    coupling, scaled by y^2), B(X -> tau tau) and their product.

    Raises
    ------
    ConfigError
        An unknown model, a mass outside 3.6-10 GeV, a coupling <= 0 (one line naming it).
    """
    check_model(model)
    check_analysis_mass(mass)
    if not (math.isfinite(coupling) and coupling > 0):
        raise ConfigError(f"{COUPLING_NAMES[model]} = {coupling!r} must be > 0")
    y = float(vertex_coupling(model, coupling))
    sigma1 = float(load_xsec_table(spin_table_path(SPIN_OF[model])).sigma_fb(mass, isr=isr))
    br = float(branching_tautau(model, mass))
    sigma = y * y * sigma1
    return {
        "model": model,
        "mass_gev": float(mass),
        "coupling": float(coupling),
        "coupling_name": COUPLING_NAMES[model],
        "muon_vertex_coupling": y,
        "isr": bool(isr),
        "sigma_fb": sigma,
        "br_tautau": br,
        "sigma_br_fb": sigma * br,
    }
