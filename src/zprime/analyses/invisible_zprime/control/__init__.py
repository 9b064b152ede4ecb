"""Control samples, data-driven corrections and the systematic uncertainties they give.

PRL 130, 231801 (2023), "Three control samples are used to validate the analysis and estimate
systematic uncertainties": mu mu gamma (photon veto reversed: a photon above 1 GeV within 15 deg
of the recoil), e mu and ee (one or both tracks identified as electrons, all else equal). They
are the selection channels ``mumugamma``, ``emu`` and ``ee`` of
:mod:`zprime.analyses.invisible_zprime.selection`. Data
are compared with simulation in each; from the comparisons come

1. the two-track **trigger** efficiency versus M_recoil^2 in e mu events taken by the ECL trigger
   (the reference): efficiency in data and simulation per bin, and a polynomial (a straight
   line by default) fitted to their ratio, the **trigger correction** ``c(M^2)`` for signal and
   background (:class:`TriggerResult`);
2. the **photon-veto inefficiency** in the backward barrel from ee events with
   M_recoil^2 < 1 GeV^2 (Bhabha + one photon, the photon along the recoil): the fraction that
   passes the veto (photon missed) in data and in simulation, the extra probability of missing a
   backward-barrel photon in data, the correction of the mu mu background it implies and the
   photon-veto background-shape uncertainty below / above 1 GeV^2
   (:class:`PhotonVetoResult`). Events whose photon could fire the two-track line's Bhabha
   veto are left out (:func:`recoil_bhabha_veto`): their trigger decision depends on whether
   the photon is seen, which would bias the measured loss upwards (x1.7);
3. the **resolution scale**: the width of the Gaussian core of M_recoil^2 (from the muons) of
   mu mu gamma events in data over simulation, and the signal-shape uncertainty it implies
   (:func:`signal_shape_from_scale`, :class:`ResolutionResult`);
4. the **signal-efficiency** uncertainty per M_recoil^2 range: the differences from unity of the
   data/simulation ratio of yields before the Punzi-net and of the ratio of Punzi-net
   efficiencies, summed in quadrature (:class:`EfficiencyRange`);
5. the **background-shape** uncertainty per range: twice the largest, over the search windows
   of the range, standard deviation of the bin-by-bin data/simulation ratios, mu mu gamma up to
   56 GeV^2 and e mu above (:class:`ShapeRange`).

Everything is measured with its statistical uncertainty; a sample too small for a measurement
gives a one-line warning naming it (logger ``zprime.analyses.invisible_zprime.control`` and its
children), and the configured fallback (``control`` and, for the systematics,
``templates.systematics.prl``: the PRL's values) is used **and recorded**.

Modules
-------
- ``samples`` (arrays and files): :class:`ChannelSample` (events of one channel after all
  selection steps except the trigger, the photon veto and the Punzi-net, which are kept as
  flags/values), a :class:`ControlSample` (data and simulation of one channel), the event-level
  flags (:func:`photon_veto_recoverable`, :func:`trigger_acceptance`,
  :func:`recoil_bhabha_veto`) and :func:`read_channels`, which reads reconstructed files batch by
  batch into channel samples (applying the Punzi-net, drawing the pseudo-data, filling cut
  flows);
- ``measurements``: the weighted statistics shared by all measurements and measurements 1 and 2,
  which give the corrections; ``systematics``: measurements 3 to 5. All of them take arrays;
  all tests run on synthetic arrays;
- ``corrections``: :func:`derive`, which makes every measurement, :class:`ControlResult` (the
  content of ``corrections.json``) and, for the application, :class:`Corrections` (from
  ``corrections.json``, :func:`read_corrections`), which gives the trigger weight ``c(M^2)`` and
  the photon-veto weights of the mu mu background; the ``systematics`` entry of
  ``corrections.json`` is what
  :func:`zprime.analyses.invisible_zprime.templates.load_systematics` reads with
  ``source: derived``;
- ``figures``: the data/simulation figures (the only module that draws);
- ``run``: :func:`run_control`, the single entry point of the pipeline: it reads the simulation
  and the data-detector samples, derives everything and writes ``corrections.json``, the
  comparison table, cut flows and plots.

Weights: every event carries ``w`` (expected events: weight in fb times the luminosity for the
simulation; 1, or the multiplicity of a drawn event, for data) and ``w2`` (its variance
contribution, ``w^2``). The statistical uncertainty of a sum is ``sqrt(sum w2)``. The
pseudo-data are thinned as the run's are (:func:`zprime.stats.pseudodata.event_counts`):
``m_j = floor(L w_j) + Bernoulli(frac(L w_j))`` per independently generated data-detector event,
so an event with ``L w <= 1`` enters at most once and the counts are Poisson, as real data's
are; an event that enters ``m`` times counts with ``w = m``, ``w2 = m^2``.

Formulas and the comparison with the PRL are in ``docs/control.md``.
"""

from __future__ import annotations

from zprime.analyses.invisible_zprime.control.corrections import (
    FORMAT,
    FORMAT_VERSION,
    ControlResult,
    Corrections,
    derive,
    read_corrections,
)
from zprime.analyses.invisible_zprime.control.figures import comparison_figure, trigger_figure
from zprime.analyses.invisible_zprime.control.measurements import (
    PhotonVetoResult,
    TriggerResult,
    measure_photon_veto,
    measure_trigger,
    weighted_efficiency,
)
from zprime.analyses.invisible_zprime.control.run import run_control
from zprime.analyses.invisible_zprime.control.samples import (
    CONTROL_CHANNELS,
    DEFERRED_STEPS,
    ChannelSample,
    ControlSample,
    photon_veto_recoverable,
    read_channels,
    recoil_bhabha_veto,
    trigger_acceptance,
)
from zprime.analyses.invisible_zprime.control.samples import (
    # the pseudo-data draw, for tests/analyses/invisible_zprime/test_control_photon_veto.py
    _draw as _draw,
)
from zprime.analyses.invisible_zprime.control.systematics import (
    EfficiencyRange,
    ResolutionResult,
    ShapeRange,
    core_width,
    measure_background_shape,
    measure_resolution,
    measure_signal_efficiency,
    signal_shape_from_scale,
)

__all__ = [
    "CONTROL_CHANNELS",
    "DEFERRED_STEPS",
    "FORMAT",
    "FORMAT_VERSION",
    "ChannelSample",
    "ControlResult",
    "ControlSample",
    "Corrections",
    "EfficiencyRange",
    "PhotonVetoResult",
    "ResolutionResult",
    "ShapeRange",
    "TriggerResult",
    "comparison_figure",
    "core_width",
    "derive",
    "measure_background_shape",
    "measure_photon_veto",
    "measure_resolution",
    "measure_signal_efficiency",
    "measure_trigger",
    "photon_veto_recoverable",
    "read_channels",
    "read_corrections",
    "recoil_bhabha_veto",
    "run_control",
    "signal_shape_from_scale",
    "trigger_acceptance",
    "trigger_figure",
    "weighted_efficiency",
]
