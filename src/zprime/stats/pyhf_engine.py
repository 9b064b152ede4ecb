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

__all__ = ["pyhf_model", "pyhf_upper_limit"]


def pyhf_model(spec: dict[str, Any]) -> tuple[Any, Any]:
    """``(model, data)`` of a workspace with pyhf's defaults (numpy backend)."""
    import pyhf  # lazy: heavy (~0.6 s to import), needed only by this reference engine

    pyhf.set_backend("numpy")
    ws = pyhf.Workspace(spec)
    model = ws.model()
    return model, ws.data(model)


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
) -> LimitResult:
    """Upper limits of ``spec`` computed by pyhf; failures give a failed :class:`LimitResult`."""
    import pyhf  # lazy: heavy (~0.6 s to import), needed only by this reference engine

    t0 = time.perf_counter()
    try:
        model, data = pyhf_model(spec)
        kwargs: dict[str, Any] = {}
        if ntoys > 0:
            # pyhf's numpy backend draws toys with scipy.stats from numpy's global state
            np.random.seed(seed)  # noqa: NPY002
            kwargs = {"calctype": "toybased", "ntoys": ntoys, "track_progress": False}
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
