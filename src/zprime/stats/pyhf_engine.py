"""The reference engine: limits from pyhf 0.7.6 itself (numpy backend, scipy optimiser).

Used by ``zprime limit --engine pyhf`` and by the tests and the benchmark that check the fast
engine against it. Limits come from pyhf's TOMS 748 root finding on CLs, ``toms748_scan``, over
the POI bounds of the model, which is what
``pyhf.infer.intervals.upper_limits.upper_limit(data, model, scan=None, level=level)`` does --
except that in pyhf 0.7.6 ``upper_limit`` does not pass ``level`` on to ``toms748_scan``, so with
``scan=None`` it always returns 95% CL limits whatever ``level`` is (open bug
https://github.com/scikit-hep/pyhf/issues/2563; verified here: ``level=0.10`` gives the
``CLs = 0.05`` crossing). We therefore call ``toms748_scan`` with the same bounds and with
``level`` passed. ``ntoys > 0`` passes ``calctype="toybased"`` and ``ntoys``.

pyhf's ``toms748_scan`` starts its bracket at the POI's lower bound, 0. When the best-fit POI
sits on that bound, pyhf's two fits at ``mu = 0`` (free and fixed) differ by the optimiser's
tolerance, q~_0 comes out slightly positive while q~_0,A = 0, and CLs(0) is 0/0 = NaN, so the
root finder stops with "The function value at x=0.0 is NaN" (the same happens a little above 0,
where q~_mu,A is still below the optimiser's noise). In that case (only) we call pyhf's own
``toms748_scan`` again with the lower end of the bracket at 1e-4, then 1e-2, times the POI upper
bound instead of 0 (CLs there is still close to 1); everything else is pyhf's algorithm.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import numpy as np

from zprime.stats.limit_result import LEVEL, LimitResult

__all__ = ["pyhf_hypotest", "pyhf_model", "pyhf_upper_limit"]


def pyhf_model(
    spec: dict[str, Any],
    modifier_settings: dict[str, dict[str, str]] | None = None,
    tolerance: float | None = None,
) -> tuple[Any, Any]:
    """``(model, data)`` of a workspace with pyhf's defaults (numpy backend, scipy optimiser).

    ``modifier_settings`` as ``pyhf.Workspace.model``; ``tolerance`` sets the tolerance of
    pyhf's scipy (SLSQP) optimiser (pyhf's default, None, leaves ~1e-4 relative noise on CLs)."""
    import pyhf  # lazy: heavy (~0.6 s to import), needed only by this reference engine

    if tolerance is None:
        pyhf.set_backend("numpy", "scipy")
    else:
        pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer(tolerance=tolerance))
    ws = pyhf.Workspace(spec)
    model = ws.model(modifier_settings=modifier_settings) if modifier_settings else ws.model()
    return model, ws.data(model)


def pyhf_hypotest(
    spec: dict[str, Any],
    mu: float,
    *,
    test_stat: str = "qtilde",
    modifier_settings: dict[str, dict[str, str]] | None = None,
    tolerance: float | None = None,
) -> tuple[float, list[float]]:
    """pyhf's asymptotic ``hypotest`` at ``mu``: (CLs or p0 for ``q0``, expected band)."""
    import pyhf  # lazy: heavy (~0.6 s to import), needed only by this reference engine

    model, data = pyhf_model(spec, modifier_settings, tolerance)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        obs, exp = pyhf.infer.hypotest(
            mu, data, model, return_expected_set=True, test_stat=test_stat
        )
    return float(obs), [float(e) for e in exp]


def _retry_scan(data: Any, model: Any, level: float, kwargs: dict[str, Any]) -> tuple[Any, Any]:
    import pyhf  # lazy: heavy (~0.6 s to import), needed only by this reference engine

    upper = model.config.suggested_bounds()[model.config.poi_index][1]
    err: Exception | None = None
    for frac in (1e-4, 1e-2):
        try:
            return pyhf.infer.intervals.upper_limits.toms748_scan(
                data, model, frac * upper, upper, level=level, **kwargs
            )
        except ValueError as exc:
            if "is NaN" not in str(exc):
                raise
            err = exc
    assert err is not None
    raise err


def pyhf_upper_limit(
    spec: dict[str, Any],
    *,
    level: float = LEVEL,
    ntoys: int = 0,
    seed: int = 0,
    name: str = "workspace",
    test_stat: str = "qtilde",
    modifier_settings: dict[str, dict[str, str]] | None = None,
    tolerance: float | None = None,
    scan_rtol: float | None = None,
) -> LimitResult:
    """Upper limits of ``spec`` computed by pyhf; failures give a failed :class:`LimitResult`.

    ``test_stat`` (``"qtilde"`` or ``"q"``), ``modifier_settings``, the optimiser
    ``tolerance`` and the relative tolerance ``scan_rtol`` of the TOMS 748 root finder (pyhf's
    default 1e-4) are passed on to pyhf."""
    import pyhf  # lazy: heavy (~0.6 s to import), needed only by this reference engine

    t0 = time.perf_counter()
    try:
        model, data = pyhf_model(spec, modifier_settings, tolerance)
        kwargs: dict[str, Any] = {"test_stat": test_stat}
        if scan_rtol is not None:
            kwargs["rtol"] = scan_rtol
        if ntoys > 0:
            # pyhf's numpy backend draws toys with scipy.stats from numpy's global state
            np.random.seed(seed)  # noqa: NPY002
            kwargs.update({"calctype": "toybased", "ntoys": ntoys, "track_progress": False})
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                bounds = model.config.suggested_bounds()[model.config.poi_index]
                obs, exp = pyhf.infer.intervals.upper_limits.toms748_scan(
                    data, model, bounds[0], bounds[1], level=level, **kwargs
                )
            except ValueError as err:
                if "is NaN" not in str(err):
                    raise
                obs, exp = _retry_scan(data, model, level, kwargs)
        res = LimitResult(
            name=name,
            observed=float(obs),
            expected=tuple(float(e) for e in exp),  # type: ignore[arg-type]
            method="toys" if ntoys > 0 else "asymptotic",
            engine="pyhf",
            level=level,
            ntoys=ntoys,
        )
    except Exception as err:  # pyhf raises many types (FailedMinimization, ValueError, ...)
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        res = LimitResult.failed(
            name,
            f"workspace {name}: pyhf failed: {msg}",
            engine="pyhf",
            method="toys" if ntoys > 0 else "asymptotic",
            ntoys=ntoys,
        )
    res.seconds = time.perf_counter() - t0
    if not math.isfinite(res.observed) and res.status == "ok":
        res.status = "failed"
        res.message = f"workspace {name}: pyhf returned a non-finite limit"
    return res
