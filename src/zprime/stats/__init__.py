"""The statistical engine: pyhf workspaces, exact batched fits, CLs limits, significance.

- :mod:`~zprime.stats.workspace`: a search window's templates -> pyhf JSON workspace (+ sidecar
  metadata), reading and writing;
- :mod:`~zprime.stats.compiled`: a pyhf HistFactory workspace (any channels and samples;
  normfactor, lumi, normsys, histosys, staterror, shapesys, shapefactor) read into flat arrays;
- :mod:`~zprime.stats.engine`: exact maximum-likelihood fits, batched over datasets, POI values
  and stacked workspaces (the same optimum and ``-2 log L`` as pyhf);
- :mod:`~zprime.stats.limits`: q~_mu / q_mu CLs upper limits, asymptotic and with toys, q0;
- :mod:`~zprime.stats.significance`: q0 / p0, goodness of fit, Gross-Vitells global significance;
- :mod:`~zprime.stats.pyhf_engine`: the same limits from pyhf itself (the reference);
- :mod:`~zprime.stats.bayesian`: credible upper limits, flat prior, nuisances marginalised.

See ``docs/stats.md`` for the likelihood, the algorithm and the checks against pyhf.
"""

from __future__ import annotations

from zprime.stats.bayesian import (
    BayesianPosterior,
    bayesian_limits,
    bayesian_posterior,
    bayesian_upper_limit,
    scan_bayesian,
)
from zprime.stats.compiled import (
    CompiledModel,
    Params,
    compile_workspace,
    stack_models,
    validate_workspace,
)
from zprime.stats.engine import FitResult, expected_main, fit, poi_uncertainty, twice_nll
from zprime.stats.limits import (
    LEVEL,
    NSIGMA,
    AsymptoticLimits,
    LimitResult,
    asymptotic_limits,
    cls_asymptotic,
    expected_limits_toys,
    hypotest,
    profile_statistic,
    qtilde,
    sample_toys,
    scan_limits,
    toy_hypotest,
    toy_limits,
    upper_limit,
)
from zprime.stats.significance import (
    Discovery,
    GlobalSignificance,
    GoodnessOfFit,
    discovery,
    global_significance,
    goodness_of_fit,
    upcrossings,
)
from zprime.stats.workspace import (
    POI_NAME,
    build_workspace,
    metadata_path,
    read_workspace,
    write_workspace,
)

__all__ = [
    "LEVEL",
    "NSIGMA",
    "POI_NAME",
    "AsymptoticLimits",
    "BayesianPosterior",
    "CompiledModel",
    "Discovery",
    "FitResult",
    "GlobalSignificance",
    "GoodnessOfFit",
    "LimitResult",
    "Params",
    "asymptotic_limits",
    "bayesian_limits",
    "bayesian_posterior",
    "bayesian_upper_limit",
    "build_workspace",
    "cls_asymptotic",
    "compile_workspace",
    "discovery",
    "expected_limits_toys",
    "expected_main",
    "fit",
    "global_significance",
    "goodness_of_fit",
    "hypotest",
    "metadata_path",
    "poi_uncertainty",
    "profile_statistic",
    "qtilde",
    "read_workspace",
    "sample_toys",
    "scan_bayesian",
    "scan_limits",
    "stack_models",
    "toy_hypotest",
    "toy_limits",
    "twice_nll",
    "upcrossings",
    "upper_limit",
    "validate_workspace",
    "write_workspace",
]
