"""Scans over hypotheses: limits, toy bands, local and global significance, goodness of fit
and the cost of each systematic uncertainty, for any set of workspaces.

A search builds one workspace per hypothesis (its windows and templates); everything from
there on is here and knows no search:

- :func:`scan` limits of every workspace (CLs, asymptotic or with toy bands, or Bayesian);
- :func:`toy_bands` expected bands from background-only toys, mapped over the hypotheses with
  an executor, seeds from the hypothesis index (results independent of the executor);
- :func:`hypothesis_rows` one row per hypothesis: limits, q0 / p0 / local Z and the
  goodness-of-fit p-value; :func:`scan_summary` the largest local and the global significance;
- :func:`systematics_impact` median expected limits with all systematics, with none and with
  each one left out.

Limits are on the signal strength of the workspace's POI (fb for our searches: columns carry
``_fb``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from zprime._util import chunk_rng
from zprime.parallel import map_tasks
from zprime.stats.bayesian import scan_bayesian
from zprime.stats.compiled import compile_workspace
from zprime.stats.limits import LimitResult, expected_limits_toys, scan_limits
from zprime.stats.significance import discovery, global_significance, goodness_of_fit

__all__ = ["hypothesis_rows", "scan", "scan_summary", "systematics_impact", "toy_bands"]

_BAND = ("m2", "m1", "median", "p1", "p2")


def _toy_band_task(task: tuple[dict[str, Any], str, int, int, int]) -> tuple[list[float], int]:
    """Expected band of one hypothesis from background-only toys (a picklable task)."""
    spec, name, ntoys, seed, index = task
    model = compile_workspace(spec, name=name)
    out = expected_limits_toys(model, ntoys, chunk_rng(seed, 9, index))
    return [float(x) for x in out["expected"]], int(out["failed"])


def toy_bands(
    specs: Sequence[dict[str, Any]],
    limits: Sequence[LimitResult],
    *,
    ntoys: int,
    seed: int,
    executor: Any = None,
    workers: int | None = None,
    progress: bool = True,
) -> list[LimitResult]:
    """Replace the asymptotic expected bands of ``limits`` by those of ``ntoys``
    background-only toys per hypothesis (the PRL's bands: "the median limits from
    background-only simulated samples").

    Seeds derive from ``seed`` and the hypothesis index, so the bands do not depend on the
    executor or the number of workers. Hypotheses whose fit failed keep their result.
    """
    todo = [i for i, lim in enumerate(limits) if lim.ok]
    tasks = [(specs[i], limits[i].name, ntoys, seed, i) for i in todo]
    results = map_tasks(
        _toy_band_task,
        tasks,
        executor=executor,
        workers=workers,
        description=f"expected bands ({ntoys} toys per hypothesis)",
        progress=progress,
    )
    out = list(limits)
    for i, (band, failed) in zip(todo, results, strict=True):
        message = out[i].message
        if failed:
            message = (message + "; " if message else "") + f"{failed} toys failed"
        out[i] = dataclasses.replace(out[i], expected=tuple(band), message=message, ntoys=ntoys)
    return out


def scan(
    specs: Sequence[dict[str, Any]],
    names: Sequence[str],
    *,
    method: Literal["cls", "bayesian"] = "cls",
    toys: int = 0,
    seed: int = 0,
    bayesian_level: float = 0.9,
    bayesian_samples: int = 0,
    bayesian_local_samples: int = 0,
    bayesian_toys: int = 0,
    executor: Any = None,
    workers: int | None = None,
    progress: bool = True,
) -> list[LimitResult]:
    """Upper limits of every workspace of a scan.

    ``method="cls"``: asymptotic CLs (:func:`zprime.stats.scan_limits`), with toy bands when
    ``toys > 0`` (:func:`toy_bands`); ``"bayesian"``: credible limits with a flat prior
    (:func:`zprime.stats.scan_bayesian`, the ``bayesian_*`` settings).
    """
    if method == "bayesian":
        return scan_bayesian(
            specs,
            names=names,
            level=bayesian_level,
            n_samples=bayesian_samples,
            n_local=bayesian_local_samples,
            ntoys=bayesian_toys,
            seed=seed,
            executor=executor,
            workers=workers,
            progress=progress,
        )
    limits = scan_limits(specs, names=names)
    if toys > 0:
        limits = toy_bands(
            specs,
            limits,
            ntoys=toys,
            seed=seed,
            executor=executor,
            workers=workers,
            progress=progress,
        )
    return limits


def hypothesis_rows(
    specs: Sequence[dict[str, Any]],
    limits: Sequence[LimitResult],
    heads: Sequence[Mapping[str, Any]],
    tails: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """One row per hypothesis: ``name``, the caller's ``heads`` columns (e.g. the mass),
    ``status``, ``message``, the observed and expected limits (``*_fb``), ``mu_hat_fb``, the
    caller's ``tails`` columns, and for a successful fit ``q0``, ``p0``, ``z_local`` (local
    discovery significance) and the saturated-model goodness of fit ``gof_p`` / ``gof_ndof``."""
    rows = []
    for spec, head, tail, lim in zip(specs, heads, tails, limits, strict=True):
        row: dict[str, Any] = {
            "name": lim.name,
            **head,
            "status": lim.status,
            "message": lim.message,
            "observed_fb": lim.observed,
            **{f"expected_{k}_fb": v for k, v in zip(_BAND, lim.expected, strict=True)},
            "mu_hat_fb": lim.mu_hat,
            **tail,
        }
        if lim.ok:
            model = compile_workspace(spec, name=lim.name)
            disc = discovery(model)
            gof = goodness_of_fit(model)
            row.update(
                q0=float(disc.q0[0]),
                p0=float(disc.p0[0]),
                z_local=float(disc.z[0]),
                gof_p=gof.p_value,
                gof_ndof=gof.ndof,
            )
        rows.append(row)
    return rows


def scan_summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Number of hypotheses and of failed ones; over the successful ones the largest local
    significance and its mass, the global significance (Gross-Vitells, in ``mass_gev``) and
    the worst goodness-of-fit p-value."""
    ok = [r for r in rows if r["status"] == "ok" and np.isfinite(r.get("q0", np.nan))]
    summary: dict[str, Any] = {"hypotheses": len(rows), "failed": len(rows) - len(ok)}
    if ok:
        gs = global_significance([r["mass_gev"] for r in ok], [r["q0"] for r in ok])
        best = max(ok, key=lambda r: r["q0"])
        summary.update(
            largest_local_z=best["z_local"],
            at_mass_gev=best["mass_gev"],
            global_p=gs.p_global,
            global_z=gs.z_global,
            worst_gof_p=min(r["gof_p"] for r in ok),
        )
    return summary


def systematics_impact(
    variants: Mapping[str, Mapping[str, dict[str, Any]]], systematics: Sequence[str]
) -> dict[str, dict[str, float]]:
    """The cost of each systematic uncertainty on the median expected limit.

    ``variants[h]`` holds, for hypothesis ``h``, the workspace with every systematic
    (``"all"``), with none (``"statistics only"``) and with each one of ``systematics`` left out
    (``"without <name>"``). Returns per hypothesis ``expected_all_fb``,
    ``expected_stat_only_fb``, ``degradation_all`` (all / statistics only - 1) and, per
    systematic, ``cost`` = all / without it - 1 (keys ``cost_<name>``, name as given).
    """
    specs, names = [], []
    for h, by_label in variants.items():
        for label, spec in by_label.items():
            specs.append(spec)
            names.append(f"{h}|{label}")
    medians = {lim.name: lim.expected[2] for lim in scan_limits(specs, names=names)}
    out: dict[str, dict[str, float]] = {}
    for h in variants:
        full = medians[f"{h}|all"]
        stat = medians[f"{h}|statistics only"]
        row = {
            "expected_all_fb": full,
            "expected_stat_only_fb": stat,
            "degradation_all": full / stat - 1.0,
        }
        for k in systematics:
            row[f"cost_{k}"] = full / medians[f"{h}|without {k}"] - 1.0
        out[h] = row
    return out
