"""The chunk interface shared by every background generator: its result type and its filter.

A chunk function ``chunk(settings, n_generate, seed) -> ChunkResult`` generates one chunk of a
background sample (the interface is described in :mod:`zprime.generators.backgrounds`, whose
driver runs the chunks). This module owns what the generators and the driver share:

- :class:`ChunkResult`, what a chunk function returns;
- :func:`track_filter`, the generator-level filter a chunk applies to its events.

It imports no generator, so the Pythia driver (:mod:`zprime.generators.backgrounds`) and
zprime's own generators (:mod:`~zprime.generators.qed`, :mod:`~zprime.generators.mumu`,
:mod:`~zprime.generators.tautau`, :mod:`~zprime.generators.fourfermion`) all import it from
here; :mod:`zprime.generators.backgrounds` re-exports both names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import awkward as ak
import numpy as np

from zprime.generators.filters import filter_particles

__all__ = ["ChunkResult", "track_filter"]


class ChunkResult(NamedTuple):
    """What a chunk function returns (the chunk interface).

    Attributes
    ----------
    events
        Kept events in the generator schema (``event``, ``weight`` in fb, ``particles``).
    n_generated
        Events generated in the chunk, before the generator-level filter.
    sigma_fb
        The generator's own cross section of the process as generated, fb.
    sigma_err_fb
        Its statistical uncertainty, fb.
    """

    events: ak.Array
    n_generated: int
    sigma_fb: float
    sigma_err_fb: float


def track_filter(particles: ak.Array, filt: Mapping[str, Any]) -> np.ndarray:
    """Generator-level filter of the chunk interface on the ragged ``particles`` column.

    The named cuts of :mod:`zprime.generators.filters` (good prongs: charged, p_T above
    ``track_pt_min_gev``, lab polar angle in ``theta_min_deg``-``theta_max_deg``, the CDC
    acceptance of basf2 ``thetaInCDCAcceptance``; at least ``min_tracks`` of them; and the
    optional two-prong cuts on the trigger angles and the recoil).

    Parameters
    ----------
    particles
        ``var * {pdg, e, px, py, pz}`` final-state particles in the lab frame.
    filt
        :class:`zprime.config.GeneratorFilterConfig` as a dict.

    Returns
    -------
    numpy.ndarray
        Boolean mask over events.
    """
    return filter_particles(particles, filt)
