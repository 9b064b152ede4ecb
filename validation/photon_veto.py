#!/usr/bin/env python3
"""The photon-veto measurement of a run against the effect of the data detector's assumption.

The pseudo-data's ``data`` detector loses an extra 2% of the photons in the backward ECL barrel
(``detector.configurations.data.ecl.backward_barrel_extra_inefficiency``: our assumption; the
PRL, PRL 130, 231801 (2023), says only that the photon-veto inefficiency there is larger in data
than in simulation, measured with ee events at M_recoil^2 < 1 GeV^2, and quotes a 34%
photon-veto background-shape systematic below 1 GeV^2). The analysis measures that loss in the
ee control sample (``zprime.analyses.invisible_zprime.control.measure_photon_veto``) and adds the mu
mu events that fail
the veto only because of backward-barrel photons with the measured probability. This script
reads a finished run's ``control/corrections.json`` (and, for the truth, the configuration in
``provenance.json``) and prints

- the measured extra miss probability p with its statistical uncertainty sigma_p, and its pull
  against the configured truth;
- the events the measurement uses, data and simulation: distinct events, effective events
  (sum w)^2 / sum w^2, which set the uncertainty, and the mean number of data events one
  generated event stands for (the clump size of the pseudo-data);
- for the mu mu background below 1 GeV^2 (simulated signal region, trigger passed, before the
  Punzi-net): the events that pass the veto in simulation U, the recoverable ones R, the
  events the assumption adds, p_true R, the uncertainty of the correction, sigma_p R, and the
  ratio sigma_p / p_true (uncertainty / effect of the assumption).

Usage::

    python validation/photon_veto.py RUN_DIR [--truth 0.02]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any


def _detector_value(config: dict[str, Any], name: str) -> float | None:
    """``ecl.backward_barrel_extra_inefficiency`` of detector configuration ``name``, following
    ``based_on`` (read from the raw configuration, so that a run made with an older
    configuration schema can still be read)."""
    confs = config.get("detector", {}).get("configurations", {})
    seen: set[str] = set()
    while name in confs and name not in seen:
        seen.add(name)
        value = confs[name].get("ecl", {}).get("backward_barrel_extra_inefficiency")
        if value is not None:
            return float(value)
        name = confs[name].get("based_on", "")
    return None


def _fmt(x: float | None, digits: int = 4) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def report(run: Path, truth: float | None = None) -> dict[str, Any]:
    """The numbers printed by :func:`main`, as a dict.

    Parameters
    ----------
    run
        A finished run directory (``control/corrections.json``, ``provenance.json``).
    truth
        The true extra loss; ``None``: the run's data detector's configured value.

    Returns
    -------
    dict
        ``extra``, ``extra_err``, ``truth``, ``pull``, ``events`` (data and simulation: raw,
        effective, yield, clump size), ``mumu_below`` (U, R, effect, uncertainty, ratio) and the
        sample settings of ``ee`` and ``eegamma``.
    """
    corr = json.loads((run / "control" / "corrections.json").read_text())
    pv = corr["photon_veto"]
    prov_path = run / "provenance.json"
    config = json.loads(prov_path.read_text()).get("config", {}) if prov_path.exists() else {}
    if truth is None:
        name = config.get("control", {}).get("data_detector", "data")
        truth = _detector_value(config, name)
    p, sp = float(pv["extra_miss_probability"]), float(pv["extra_miss_probability_err"])
    events = {}
    for kind, key in (("data", "data"), ("simulation", "simulation")):
        raw = pv.get(f"events_raw_{key}")
        yld = pv.get(f"yield_{key}")
        events[kind] = {
            "raw": raw,
            "effective": pv.get(f"events_{key}"),
            "yield": yld,
            "clump": yld / raw if raw and yld is not None else None,
        }
    below = pv.get("shape_inputs", {}).get("below", {})
    u, r = below.get("uncorrected_yield"), below.get("recoverable_yield")
    ref = truth if truth else p  # without a truth (real data) the measured value is the effect
    mumu = {
        "passing": u,
        "recoverable": r,
        "effect": ref * r if r is not None else None,
        "effect_fraction": ref * r / (u + ref * r) if r and u is not None else None,
        "uncertainty": sp * r if r is not None else None,
        "ratio": sp / ref if ref else None,
        "shape_systematic": pv.get("shape_below_above", [None])[0],
    }
    samples = config.get("backgrounds", {}).get("samples", {})
    settings = {
        n: {
            "events": samples.get(n, {}).get("events"),
            "options": samples.get(n, {}).get("options"),
        }
        for n in ("ee", "eegamma")
    }
    return {
        "extra": p,
        "extra_err": sp,
        "eff_data": pv["inefficiency_data"],
        "eff_data_err": pv["inefficiency_data_err"],
        "eff_sim": pv["inefficiency_simulation"],
        "eff_sim_err": pv["inefficiency_simulation_err"],
        "truth": truth,
        "pull": (p - truth) / sp if truth is not None and sp > 0 else None,
        "events": events,
        "mumu_below": mumu,
        "samples": settings,
        "fallback": pv.get("fallback", False),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished run directory")
    parser.add_argument(
        "--truth",
        type=float,
        default=None,
        help="true extra loss (default: the run's data detector's configured value)",
    )
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args()
    rep = report(args.run, args.truth)
    if args.json:
        print(json.dumps(rep, indent=1))
        return
    print(f"# Photon-veto measurement of {args.run}\n")
    for name, s in rep["samples"].items():
        opts = s["options"] or {}
        frac = opts.get("enhance_fraction", 0.0)
        extra = f", {frac:.3g} of them in the enhanced stratum" if frac else ""
        n = s["events"]
        print(f"- sample `{name}`: {'n/a' if n is None else f'{n:,}'} generated points{extra}")
    print(
        f"- extra miss probability (backward barrel, M^2 < 1 GeV^2): "
        f"p = {rep['extra']:.5f} +- {rep['extra_err']:.5f}"
        + (" (FALLBACK)" if rep["fallback"] else "")
    )
    print(
        f"  inefficiency data {rep['eff_data']:.5f} +- {rep['eff_data_err']:.5f}, "
        f"simulation {rep['eff_sim']:.2e} +- {rep['eff_sim_err']:.2e}"
    )
    if rep["truth"] is not None:
        print(f"  truth (data detector) {rep['truth']:.4f}: pull {_fmt(rep['pull'], 3)}")
    print("\n| events in the region | distinct | effective | yield | data events per event |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for kind, e in rep["events"].items():
        print(
            f"| {kind} | {_fmt(e['raw'], 7)} | {_fmt(e['effective'], 6)} | "
            f"{_fmt(e['yield'], 6)} | {_fmt(e['clump'], 4)} |"
        )
    m = rep["mumu_below"]
    print(
        "\nmu mu background below 1 GeV^2 (simulated signal region, trigger, before the network):"
    )
    print(f"- passing the veto in simulation U = {_fmt(m['passing'], 6)}")
    print(f"- recoverable (fail only by backward-barrel photons) R = {_fmt(m['recoverable'], 6)}")
    label = "p_true" if rep["truth"] else "p"
    print(
        f"- effect of the assumption {label} R = {_fmt(m['effect'], 6)} events "
        f"({_fmt(100 * m['effect_fraction'] if m['effect_fraction'] else None, 3)}% "
        "of the corrected yield)"
    )
    print(f"- uncertainty of the correction sigma_p R = {_fmt(m['uncertainty'], 6)} events")
    print(f"- ratio uncertainty / effect = sigma_p / {label} = {_fmt(m['ratio'], 3)}")
    print(f"- photon-veto shape systematic below 1 GeV^2: {_fmt(m['shape_systematic'], 3)}")


if __name__ == "__main__":
    main()
