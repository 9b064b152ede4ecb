"""Benchmark of the fast engine on general HistFactory models against pyhf 0.7.6. Prints only.

Measured in one run, on the same machine:

1. every pyhf validation case (``tests/stats/data/pyhf_validation``: one and two channels,
   shapesys, lumi, normsys, histosys, coupled normsys / histosys / shapefactor): time of a 95%
   CL upper limit (observed + 5 expected, asymptotic) with the fast engine and with pyhf
   (numpy backend, SLSQP, pyhf's TOMS 748 scan), their ratio and the largest relative
   difference of the six limits;
2. a 3-channel, 60-bin model (a signal region and two control regions of 20 bins each): signal
   with normfactor, lumi and normsys; a data-driven background whose shape is a shapefactor
   shared by the three channels (20 parameters, each acting on one bin of every channel), a
   second background with a normsys and a histosys shared across channels (one parameter of
   both types), staterror per channel and a shapesys in the signal region: 105 parameters.
   The fast engine's full limit is timed; pyhf's full limit takes many minutes (numerical
   gradients over 105 parameters), so by default one pyhf ``hypotest`` at the fast engine's
   observed limit is timed and compared, and pyhf's time per limit is extrapolated with the
   number of hypotests its TOMS 748 scan needed on the validation cases (``--pyhf-full`` runs
   pyhf's full limit instead);
3. 20 such 60-bin models with different data, solved stacked (``scan_limits``).

CPU times (``time.process_time``) are quoted next to wall times: the machine is shared.

Run: ``python benchmarks/bench_histfactory.py [--pyhf-full] [--no-pyhf]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np

from zprime.stats.compiled import compile_workspace
from zprime.stats.limits import hypotest, scan_limits, upper_limit
from zprime.stats.pyhf_engine import pyhf_hypotest, pyhf_upper_limit

DATA = Path(__file__).resolve().parents[1] / "tests" / "stats" / "data" / "pyhf_validation"
LEVEL = 0.05


def timed(fn, repeat: int = 1):
    """(result, wall seconds, CPU seconds) per call, the best of ``repeat`` calls."""
    best = (None, np.inf, np.inf)
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        w, c = time.perf_counter() - w0, time.process_time() - c0
        if w < best[1]:
            best = (out, w, c)
    return best


def big_model(rng: np.random.Generator, nb: int = 20) -> dict:
    """Three channels x ``nb`` bins with shapefactors shared across channels (see above)."""
    x = np.linspace(0.0, 1.0, nb)
    shape = 40.0 * np.exp(-2.0 * x) + 5.0
    sig = 12.0 * np.exp(-0.5 * ((x - 0.5) / 0.08) ** 2)
    chans, obs = [], []
    for c, (cname, scale) in enumerate((("SR", 1.0), ("CR1", 4.0), ("CR2", 2.5))):
        main = shape * scale
        other = 0.3 * main + 3.0
        up, dn = other * (1.05 + 0.1 * x), other * (0.95 - 0.08 * x)
        samples = [
            {
                "name": "bkg_dd",
                "data": main.tolist(),
                "modifiers": [
                    {"name": "sf_shape", "type": "shapefactor", "data": None},
                    {"name": f"stat_{cname}", "type": "staterror", "data": (0.03 * main).tolist()},
                ],
            },
            {
                "name": "bkg_mc",
                "data": other.tolist(),
                "modifiers": [
                    {"name": "jes", "type": "normsys", "data": {"hi": 1.08, "lo": 0.93}},
                    {
                        "name": "jes",
                        "type": "histosys",
                        "data": {"hi_data": up.tolist(), "lo_data": dn.tolist()},
                    },
                    {"name": "xsec_mc", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}},
                    {"name": f"stat_{cname}", "type": "staterror", "data": (0.05 * other).tolist()},
                ],
            },
        ]
        if c == 0:
            samples[1]["modifiers"].append(
                {"name": "shape_mc_SR", "type": "shapesys", "data": (0.1 * other).tolist()}
            )
            samples.append(
                {
                    "name": "signal",
                    "data": sig.tolist(),
                    "modifiers": [
                        {"name": "mu", "type": "normfactor", "data": None},
                        {"name": "lumi", "type": "lumi", "data": None},
                        {"name": "eff", "type": "normsys", "data": {"hi": 1.05, "lo": 0.95}},
                    ],
                }
            )
        lam = main + other
        chans.append({"name": cname, "samples": samples})
        obs.append({"name": cname, "data": rng.poisson(lam).astype(float).tolist()})
    lumi = {"name": "lumi", "auxdata": [1.0], "sigmas": [0.02], "bounds": [[0.5, 1.5]]}
    lumi["inits"] = [1.0]
    return {
        "channels": chans,
        "observations": obs,
        "measurements": [
            {"name": "meas", "config": {"poi": "mu", "parameters": [lumi]}},
        ],
        "version": "1.0.0",
    }


class HypotestCounter:
    """Counts pyhf's hypotests inside its TOMS 748 scan."""

    def __init__(self) -> None:
        import pyhf.infer.intervals.upper_limits as ul

        self.mod = ul
        self.orig = ul.hypotest
        self.n = 0

    def __enter__(self) -> HypotestCounter:
        def wrapped(*a, **k):
            self.n += 1
            return self.orig(*a, **k)

        self.mod.hypotest = wrapped
        return self

    def __exit__(self, *exc) -> None:
        self.mod.hypotest = self.orig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pyhf-full", action="store_true", help="pyhf's full limit on 60 bins")
    ap.add_argument("--no-pyhf", action="store_true", help="skip pyhf")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    refs = json.loads((DATA / "reference.json").read_text(encoding="utf-8"))

    print("[1] pyhf validation cases: 95% CL limit (obs + 5 expected), asymptotic")
    print(f"{'case':34s} {'fast ms':>8s} {'pyhf s':>8s} {'ratio':>8s} {'max rel diff':>13s}")
    n_hypo: list[int] = []
    for name, ref in refs.items():
        if name.startswith("_"):
            continue
        spec = json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))
        ms = {
            "normsys": {"interpcode": ref["normsys"]},
            "histosys": {"interpcode": ref["histosys"]},
        }
        ts = "q" if ref["test_stat"] == "q" else "qtilde"
        ours, w_f, _ = timed(
            lambda s=spec, m=ms, t=ts: upper_limit(
                s, level=LEVEL, test_stat=t, modifier_settings=m
            ),
            repeat=5,
        )
        if args.no_pyhf:
            print(f"{name:34s} {1e3 * w_f:8.1f}")
            continue
        with HypotestCounter() as cnt:
            theirs, w_p, _ = timed(
                lambda s=spec, m=ms, t=ts: pyhf_upper_limit(
                    s, level=LEVEL, test_stat=t, modifier_settings=m
                )
            )
        n_hypo.append(cnt.n)
        a = np.r_[ours.observed, ours.expected]
        b = np.r_[theirs.observed, theirs.expected]
        diff = float(np.max(np.abs(a - b) / np.abs(b)))
        print(f"{name:34s} {1e3 * w_f:8.1f} {w_p:8.2f} {w_p / w_f:8.0f} {diff:13.1e}")
    if n_hypo:
        print(
            f"    pyhf hypotests per limit: {np.mean(n_hypo):.1f} "
            f"(min {min(n_hypo)}, max {max(n_hypo)})"
        )

    print("\n[2] 3 channels x 20 bins, shared shapefactor, 105 parameters")
    spec = big_model(np.random.default_rng(7))
    model = compile_workspace(spec)
    print(
        f"    fast engine: {model.n_parameters()} parameters, {model.n_globals} global, "
        f"{model.n_samples} engine samples, {model.nbins} bins"
    )
    ours, w_f, c_f = timed(lambda: upper_limit(spec, level=LEVEL), repeat=3)
    print(
        f"    fast limit: {1e3 * w_f:.0f} ms wall ({1e3 * c_f:.0f} ms CPU): observed "
        f"{ours.observed:.4f}, expected {np.round(ours.expected, 4).tolist()} [{ours.status}]"
    )
    (cls_f, band_f), w_h, _ = timed(lambda: hypotest(model, ours.observed), repeat=3)
    print(
        f"    fast hypotest at mu = {ours.observed:.4f}: CLs {cls_f[0]:.6f} in {1e3 * w_h:.1f} ms"
    )
    if not args.no_pyhf:
        if args.pyhf_full:
            theirs, w_p, c_p = timed(lambda: pyhf_upper_limit(spec, level=LEVEL))
            a = np.r_[ours.observed, ours.expected]
            b = np.r_[theirs.observed, theirs.expected]
            print(
                f"    pyhf limit: {w_p:.1f} s wall ({c_p:.1f} s CPU), ratio {w_p / w_f:.0f}; "
                f"max rel diff {float(np.max(np.abs(a - b) / np.abs(b))):.1e}"
            )
        else:
            (o, e), w_p, c_p = timed(lambda: pyhf_hypotest(spec, ours.observed))
            per = np.mean(n_hypo) if n_hypo else 60.0
            print(
                f"    pyhf hypotest at the same mu: {w_p:.1f} s wall ({c_p:.1f} s CPU), CLs "
                f"{o:.6f} (rel diff {abs(cls_f[0] / o - 1):.1e}, band "
                f"{float(np.max(np.abs(band_f[0] / np.asarray(e) - 1))):.1e}); "
                f"hypotest ratio {w_p / w_h:.0f}"
            )
            print(
                f"    pyhf limit extrapolated ({per:.0f} hypotests): {per * w_p:.0f} s vs "
                f"{1e3 * w_f:.0f} ms, ratio ~{per * w_p / w_f:.0f}"
            )

    print("\n[3] 20 such models with different data, stacked (scan_limits)")
    specs = [big_model(np.random.default_rng(100 + i)) for i in range(20)]
    res, w_s, c_s = timed(lambda: scan_limits(specs, level=LEVEL))
    ok = sum(r.ok for r in res)
    print(
        f"    {1e3 * w_s / 20:.0f} ms wall ({1e3 * c_s / 20:.0f} ms CPU) per limit, {ok}/20 ok "
        f"(single: {1e3 * w_f:.0f} ms)"
    )


if __name__ == "__main__":
    main()
