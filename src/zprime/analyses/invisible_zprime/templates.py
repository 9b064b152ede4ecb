"""Fit templates per search window: 2D (M_recoil^2 x theta_recoil^CM) histograms of the signal,
the backgrounds and the data, with the PRL's systematic uncertainties attached.

What the PRL (PRL 130, 231801 (2023)) prescribes and how it is done here:

- "a binned likelihood based on signal and background two-dimensional templates obtained from
  simulation. The parameter of interest is the signal cross section": every template is a
  :class:`hist.Hist` with ``Weight`` storage (sum of w and of w^2) on the window's bins
  (:mod:`zprime.analyses.invisible_zprime.binning`); backgrounds hold expected events (event weight
  in fb times the
  luminosity in fb^-1); the signal holds expected events **per fb of sigma x B**, i.e.
  efficiency x luminosity per bin, so the fit's POI is the cross section in fb.
- signal templates at every hypothesis from a handful of simulated masses
  (:class:`SignalModel`): each simulated event is placed at the hypothesis by the
  *shift-and-scale* map ``M^2_reco -> M_h^2 + sigma(M_h^2) (M^2_reco - M_s^2) / sigma(M_s^2)``
  (the shape in resolution units is carried over), its theta_recoil^CM is kept, and the two
  simulated masses that bracket ``M_h`` are mixed with weights linear in M; the efficiency is
  thereby interpolated linearly in M as well. Outside the simulated range the nearest sample is
  used alone (shape mapped, efficiency held) and the window is flagged ``extrapolated``.
  Closure: :func:`interpolation_closure`, numbers in ``docs/templates.md``.
- wide Z' (Gamma = 0.1 M): "Breit-Wigner distributions with the widths Gamma convolved with
  Gaussian resolution functions ... only one-dimensional M_recoil^2 templates"
  (:meth:`SignalModel.wide_template`).
- systematic uncertainties (the PRL's "Systematic uncertainties" paragraphs; values in the
  configuration, ``templates.systematics``): signal efficiency per M^2 range (normsys), per-bin
  signal shape, per-bin background shape per range, per-bin photon-veto background shape on the
  mu mu component, luminosity, and the templates' MC statistical uncertainty
  (:class:`SystematicsTable`).

Where it is done (this module re-exports every public name of them):

- :mod:`~zprime.analyses.invisible_zprime.signal_model`: :class:`SimulatedSignal`,
  :class:`SignalModel`, :func:`theta_recoil_acceptance`, :func:`interpolation_closure`,
  :func:`measured_widths`;
- :mod:`~zprime.analyses.invisible_zprime.systematics_table`: :class:`SystematicsTable`,
  :func:`load_systematics`;
- :mod:`~zprime.analyses.invisible_zprime.window_templates`: :class:`WindowTemplates`,
  :class:`TemplateSet`, :data:`FORMAT_VERSION`, :data:`FLATTEN_ORDER` and the files
  (:func:`write_templates`, :func:`read_window`, :func:`read_templates`);
- :mod:`~zprime.analyses.invisible_zprime.template_building`: :func:`build_window`,
  :func:`build_templates` (with its parallel map), :func:`templates_from_config`,
  :class:`EmptyWindowError`; it logs failed windows on this module's logger.

Flattening: a window's 2D template is one pyhf channel; bins are flattened **row-major** with
M_recoil^2 as the slow index, ``flat = i_m2 * n_theta + i_theta`` (``values().ravel()``), and
:meth:`WindowTemplates.bin_map` lists ``(i_m2, i_theta)`` per flat bin.

The selected events of a sample (:class:`EventSample`) and the window histograms' helpers live in
:mod:`zprime.analyses.invisible_zprime.samples` (shared with the smoothed templates of
:mod:`zprime.analyses.invisible_zprime.smoothing`); :class:`EventSample` and the helpers
``_filled`` and ``_from_arrays`` are re-exported here.

Files: one JSON per hypothesis, ``<dir>/<name>.json`` (name
:func:`zprime.analyses.invisible_zprime.binning.hypothesis_name`, e.g. ``M2.3520.json``), plus
``<dir>/index.json`` with the list of windows, the failed ones and their reasons, the
resolution model and the grid; all written atomically.
"""

from __future__ import annotations

from zprime.analyses.invisible_zprime.samples import EventSample
from zprime.analyses.invisible_zprime.samples import _filled as _filled
from zprime.analyses.invisible_zprime.samples import _from_arrays as _from_arrays
from zprime.analyses.invisible_zprime.signal_model import (
    SignalModel,
    SimulatedSignal,
    interpolation_closure,
    measured_widths,
    theta_recoil_acceptance,
)
from zprime.analyses.invisible_zprime.systematics_table import SystematicsTable, load_systematics
from zprime.analyses.invisible_zprime.template_building import (
    EmptyWindowError,
    build_templates,
    build_window,
    templates_from_config,
)
from zprime.analyses.invisible_zprime.window_templates import (
    FLATTEN_ORDER,
    FORMAT_VERSION,
    TemplateSet,
    WindowTemplates,
    read_templates,
    read_window,
    write_templates,
)

__all__ = [
    "FLATTEN_ORDER",
    "FORMAT_VERSION",
    "EmptyWindowError",
    "EventSample",
    "SignalModel",
    "SimulatedSignal",
    "SystematicsTable",
    "TemplateSet",
    "WindowTemplates",
    "build_templates",
    "build_window",
    "interpolation_closure",
    "load_systematics",
    "measured_widths",
    "read_templates",
    "read_window",
    "templates_from_config",
    "theta_recoil_acceptance",
    "write_templates",
]
