"""The Punzi-net: a neural network trained on the Punzi figure of merit of all mass hypotheses.

PRL 130, 231801 (2023): "The final selection uses an artificial neural network, denoted as
Punzi-net [40], trained on simulated signal and background events, and specifically designed to
optimize a figure of merit [41] for all Z' mass hypotheses simultaneously." Reference [40] is
F. Abudinen et al., "Punzi-loss: a non-differentiable metric approximation for sensitivity
optimisation in the search for new particles", Eur. Phys. J. C 82, 121 (2022),
arXiv:2110.00810 (public code: github.com/feichtip/punzinet); [41] is G. Punzi, eConf C030908,
MODT002 (2003), arXiv:physics/0308063.

The loss
--------
For mass hypothesis i (the signal masses trained on) the search window is
``|M_recoil^2 - M_i^2| < N sigma(M_i^2)`` with ``sigma`` the signal M_recoil^2 resolution and
``N = window_sigmas`` (2 in the reference code, ``set_range_index(..., n_sigma=2)``). With the
network output ``y`` in [0, 1] weighting every event,

    eps_i = sum_{signal of mass i in window i} w_j y_j / W_i       (efficiency)
    B_i   = L * sum_{background in window i} w_j y_j               (expected background events)
    sigma_min,i = [c + a sqrt(B_i) + (b/2) sqrt(b^2 + 4 a sqrt(B_i) + 4 B_i)] / (eps_i L)

where ``w`` are the event weights (fb; yield = w L), ``W_i`` the summed weight of all *generated*
signal events of mass i (so eps_i is the efficiency relative to the generated sample), ``L`` the
luminosity, and ``c = b^2/2`` (Punzi's Gaussian-approximation formula, the one the PRL's authors
quote) or ``c = a^2/8 + 9 b^2/13`` (Punzi's improved fit to the exact Poisson result, used by the
reference code; ``refined_constant``). ``sigma_min`` is the smallest cross section (fb) for which
the search has a discovery at ``a`` sigma with probability given by ``b`` sigma
(a = 3, b = 1.28155 = Phi^-1(0.90) in the reference code). The loss is the **mean** of sigma_min,i
over the hypotheses, as in the reference code (``torch.mean`` of the per-mass values). Replacing
the hard cut by the output makes eps and B differentiable ("non-differentiable metric
approximation").

In the loss (not in the reported figures of merit) B_i gets ``background_floor`` mean background
event weights of window i added: the simulated sample cannot resolve less than about one event,
and without it the loss pays without bound for removing the last simulated events of a window.

Training, as the reference code (``train.py``, ``examples/punzi_training.ipynb``) does it:

1. a 4-8-4-1 tanh network with a sigmoid output, Kaiming-normal weights and normal biases;
2. pre-training with a weighted binary cross-entropy (signal and background classes with equal
   total weight, background events with their luminosity weights, signal events with ``w/W_i``),
   plain SGD (lr 1) on shuffled mini-batches of 4096;
3. training on the Punzi loss, full batch (the loss needs whole-window sums), plain SGD
   (lr 0.05);

each phase with ``ReduceLROnPlateau`` (factor 0.5, patience 10 and 20 epochs). Unlike the
reference code we step the schedule on the validation loss and stop early, keeping the best
epoch. The signal masses alternate between training and test hypotheses (every other one, the
highest always trains); the background splits at random into training (+ validation) and test
events; the record's figure of merit is measured on the test part.

Only events inside at least one training window enter either phase (as in the reference code).
Inputs are standardised with the mean and standard deviation of the training events, stored with
the network. Everything is seeded and runs with ``torch.use_deterministic_algorithms(True)`` and
a fixed number of threads, so a seed gives bitwise the same network on the same machine.

The four inputs are the c.m.-frame variables of the PRL (columns of the reconstructed schema,
``docs/event-schema.md``): ``pt_thrust_cm``, ``pt_hi_lo_cm``, ``pl_hi_lo_cm``, ``pt_mumu_cm``;
``m_recoil2`` places events in windows and ``weight`` is the cross section per event (fb).

Modules
-------
Everything public is importable from the package itself; the code lives in the modules:

- ``inputs``: the column names (:data:`FEATURES`, ``m_recoil2``, ``weight``, the output column
  ``punzinet``), the PRL's output cut, the fallback resolution (:func:`default_resolution`),
  :class:`SignalSample`, the column checks, and the synthetic problem of the tests and
  benchmarks (:func:`toy_samples`);
- ``loss``: :func:`sigma_min`, the mass windows (:class:`Windows`, :func:`make_windows`) and
  the differentiable :func:`punzi_loss`;
- ``network``: the torch modules :class:`PunziNetwork` (with the reference initialisation) and
  :class:`PunziEnsemble`, deterministic evaluation;
- ``fom``: the hard-cut figure-of-merit table (:class:`FomRow`, :class:`FomTable`) and the scan
  over the output cuts :data:`SCAN_CUTS`;
- ``model``: :class:`TrainedPunziNet`, :func:`predict`, :func:`apply`, :func:`punzi_fom`,
  :func:`read_training_files`, and the network file (:func:`save`, :func:`load`);
- ``training``: :func:`train` (the mass and event splits, BCE pre-training, the Punzi-loss
  phase with its schedule and early stopping, the ensemble, the test report).

Each module imports only those above it in this list. Warnings are logged to the logger
``zprime.analyses.invisible_zprime.punzinet``.
"""

from __future__ import annotations

from zprime.analyses.invisible_zprime.punzinet.fom import (
    SCAN_CUTS,
    FomRow,
    FomTable,
)
from zprime.analyses.invisible_zprime.punzinet.fom import TEST_NOTE as TEST_NOTE
from zprime.analyses.invisible_zprime.punzinet.inputs import (
    FEATURES,
    MASS2_COLUMN,
    OUTPUT_COLUMN,
    SignalSample,
    default_resolution,
    toy_samples,
)
from zprime.analyses.invisible_zprime.punzinet.inputs import PRL_OUTPUT_CUT as PRL_OUTPUT_CUT
from zprime.analyses.invisible_zprime.punzinet.inputs import WEIGHT_COLUMN as WEIGHT_COLUMN
from zprime.analyses.invisible_zprime.punzinet.inputs import Events as Events
from zprime.analyses.invisible_zprime.punzinet.inputs import Resolution as Resolution
from zprime.analyses.invisible_zprime.punzinet.loss import (
    Windows,
    make_windows,
    punzi_loss,
    sigma_min,
)
from zprime.analyses.invisible_zprime.punzinet.model import FILE_FORMAT as FILE_FORMAT
from zprime.analyses.invisible_zprime.punzinet.model import FILE_VERSION as FILE_VERSION
from zprime.analyses.invisible_zprime.punzinet.model import (
    TrainedPunziNet,
    apply,
    load,
    predict,
    punzi_fom,
    read_training_files,
    save,
)
from zprime.analyses.invisible_zprime.punzinet.network import PunziEnsemble, PunziNetwork
from zprime.analyses.invisible_zprime.punzinet.training import _mass_split as _mass_split
from zprime.analyses.invisible_zprime.punzinet.training import train

__all__ = [
    "FEATURES",
    "MASS2_COLUMN",
    "OUTPUT_COLUMN",
    "SCAN_CUTS",
    "FomRow",
    "FomTable",
    "PunziEnsemble",
    "PunziNetwork",
    "SignalSample",
    "TrainedPunziNet",
    "Windows",
    "apply",
    "default_resolution",
    "load",
    "make_windows",
    "predict",
    "punzi_fom",
    "punzi_loss",
    "read_training_files",
    "save",
    "sigma_min",
    "toy_samples",
    "train",
]
