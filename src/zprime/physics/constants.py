"""Physical constants, beam parameters and units used throughout zprime.

Units inside the code: GeV, GeV^2, fb, fb^-1, radians.

Sources
-------
- Beam energies (7 GeV e-, 4 GeV e+), the boost beta*gamma = 0.28 of the c.m. frame along the
  electron beam (the detector z axis) and sqrt(s) = 10.58 GeV: Belle II, PRL 130, 231801 (2023).
- Particle masses: the PDG tables through the ``particle`` package.
- hbar c^2 conversion and fb: ``hepunits``.
"""

from __future__ import annotations

import math

from hepunits import constants as _hc
from hepunits import units as _hu
from particle import Particle

# --- beams (PRL 130, 231801: "7 GeV and 4 GeV with a boost of the c.m. frame beta*gamma = 0.28")
E_ELECTRON_BEAM: float = 7.0
"""Energy of the electron beam (high-energy ring) in GeV; it moves along +z."""
E_POSITRON_BEAM: float = 4.0
"""Energy of the positron beam (low-energy ring) in GeV; it moves along -z."""

SQRT_S: float = 2.0 * math.sqrt(E_ELECTRON_BEAM * E_POSITRON_BEAM)
"""Centre-of-mass energy of head-on 7 + 4 GeV beams, 10.583 GeV (the PRL's 10.58 GeV)."""
S: float = SQRT_S**2
"""Square of the centre-of-mass energy in GeV^2."""
BETA_GAMMA: float = (E_ELECTRON_BEAM - E_POSITRON_BEAM) / SQRT_S
"""beta*gamma of the c.m. frame in the lab, 0.2835 along +z (the PRL quotes 0.28)."""
GAMMA_BOOST: float = math.sqrt(1.0 + BETA_GAMMA**2)
BETA_BOOST: float = BETA_GAMMA / GAMMA_BOOST
P_BEAMS_LAB: tuple[float, float, float, float] = (
    E_ELECTRON_BEAM + E_POSITRON_BEAM,
    0.0,
    0.0,
    E_ELECTRON_BEAM - E_POSITRON_BEAM,
)
"""Four-momentum (E, px, py, pz) of the initial state in the lab frame, GeV."""


def _mass_gev(pdgid: int) -> float:
    mass = Particle.from_pdgid(pdgid).mass
    if mass is None:  # pragma: no cover - the particles used below all have masses
        raise ValueError(f"PDG id {pdgid} has no mass in the particle tables")
    return float(mass) / 1000.0  # particle gives MeV


# --- masses (PDG, through `particle`)
M_ELECTRON: float = _mass_gev(11)
M_MUON: float = _mass_gev(13)
M_TAU: float = _mass_gev(15)
M_PION: float = _mass_gev(211)

# --- couplings
ALPHA_0: float = 1.0 / 137.035999084
"""Fine-structure constant in the Thomson limit (CODATA 2018)."""
ALPHA_INVERSE_MADGRAPH: float = 132.507
"""1/alpha of the MadGraph5_aMC@NLO default Standard Model parameter card (``aEWM1``); the PRL's
signal samples were made with MadGraph5_aMC@NLO 2.6.6, so this is zprime's default for the
signal cross section."""

# --- units
GEV2_TO_FB: float = float((_hc.hbarc**2 / _hu.GeV**2) / _hu.femtobarn)
"""Conversion of a cross section from GeV^-2 to fb (hbar c)^2 = 3.894e11 fb GeV^2."""
GEV2_TO_NB: float = float((_hc.hbarc**2 / _hu.GeV**2) / _hu.nanobarn)

# --- particle identifiers used in the event schema
PDG_ZPRIME: int = 32
"""PDG code used for the Z' (the PDG Monte Carlo numbering's Z'0)."""
PDG_DARK_HIGGS: int = 54
"""PDG code of the dark Higgs h': the PDG Monte Carlo numbering scheme reserves 54 for a spin-0
mediator of a dark sector (PDG Review: Monte Carlo particle numbering scheme)."""
PDG_DARK_PHOTON: int = 55
"""PDG code of the dark photon A': 55, a spin-1 dark-sector mediator in the PDG Monte Carlo
numbering scheme (PDG Review: Monte Carlo particle numbering scheme). The generators decay the
A', so it never appears as a final-state particle."""
INVISIBLE_PDG: frozenset[int] = frozenset({12, 14, 16, PDG_ZPRIME, PDG_DARK_HIGGS})
"""Particles that leave no trace in the detector: neutrinos, the Z' and the (long-lived) h'."""

# --- electroweak scale (appended for physics/leptophilic.py)
G_FERMI: float = 1.1663788e-5
"""Fermi constant in GeV^-2 from the muon lifetime (PDG Review of Particle Physics 2024,
"Physical constants": G_F/(hbar c)^3 = 1.1663788(6) x 10^-5 GeV^-2; MuLan, PRD 87, 052003
(2013))."""
V_HIGGS: float = (math.sqrt(2.0) * G_FERMI) ** -0.5
"""Higgs vacuum expectation value v = (sqrt(2) G_F)^(-1/2) = 246.22 GeV (tree-level relation, the
normalisation of the leptophilic scalar's coupling xi m_l / v)."""
