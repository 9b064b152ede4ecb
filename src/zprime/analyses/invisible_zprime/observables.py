"""The observables of the invisible-Z' search: the columns its fit and pseudo-data use.

The fit is two-dimensional: M_recoil^2 (``m_recoil2``, GeV^2) in windows of the measured
resolution, times theta_recoil in the centre-of-mass frame (``theta_recoil_cm``, radians) in
the PRL's 1-5 bins; the lab polar angle of the recoil (``theta_recoil``) is kept with the
pseudo-data for the photon-veto correction and the figures.
"""

from __future__ import annotations

__all__ = ["FIT_COLUMNS", "PSEUDO_DATA_COLUMNS"]

#: the fit variables
FIT_COLUMNS: tuple[str, ...] = ("m_recoil2", "theta_recoil_cm")
#: what the pseudo-data keep of each selected event (besides its weight)
PSEUDO_DATA_COLUMNS: tuple[str, ...] = ("m_recoil2", "theta_recoil_cm", "theta_recoil")
