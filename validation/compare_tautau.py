#!/usr/bin/env python3
"""zprime's tau-pair generator against Pythia 8 (issue 12's checks), per decay mode.

Reads the Pythia reference written by ``validation/pythia_tautau_reference.py`` (all decays, and
both taus forced to pi nu) and generates the same number of tau pairs with
``zprime.generators.tautau`` (no filter, neutrinos kept). Compared, each as normalised
histograms with a chi^2 per degree of freedom, and drawn into ``--out``:

- per decay mode (e, mu, pi, K, rho, a1 -> 3 pi, a1_1prong = pi 2pi0): the momentum of the
  charged prong in the tau rest frame and in the lab, and the visible mass;
- the lab opening angle of the two charged prongs in 1-prong x 1-prong events;
- for pi nu / pi nu events, the energy fractions x = E_pi / E_beam (c.m.) of the two pions: the
  correlation coefficient and the 2D distribution (the classic spin-correlation observable),
  also for our generator with the spin correlations switched off, to show it is tested;
- the branching fractions of the modes.

    python validation/compare_tautau.py --out validation/out/tautau
"""

from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from zprime.physics.constants import SQRT_S
from zprime.physics.kinematics import lab_to_cm

CHARGED = (11, 13, 211, 321)
MODES = ("e", "mu", "pi", "K", "rho", "a1_3prong", "a1_1prong")


def pythia_modes(ids: np.ndarray) -> np.ndarray:
    """Mode label of each tau from its direct decay products (Pythia: pi0 undecayed)."""
    a = np.abs(ids)
    n_ch = np.isin(a, CHARGED).sum(axis=1)
    n_pi = (a == 211).sum(axis=1)
    n_pi0 = (a == 111).sum(axis=1)
    other_neutral = np.isin(a, (130, 310, 311, 221, 223, 22)).sum(axis=1)
    lab = np.full(len(ids), "other", dtype=object)
    one = (n_ch == 1) & (other_neutral == 0)
    lab[one & (a == 11).any(axis=1)] = "e"
    lab[one & (a == 13).any(axis=1)] = "mu"
    lab[one & (n_pi == 1) & (n_pi0 == 0)] = "pi"
    lab[one & (a == 321).any(axis=1) & (n_pi0 == 0)] = "K"
    lab[one & (n_pi == 1) & (n_pi0 == 1)] = "rho"
    lab[one & (n_pi == 1) & (n_pi0 == 2)] = "a1_1prong"
    lab[(n_ch == 3) & (n_pi == 3) & (n_pi0 == 0) & (other_neutral == 0)] = "a1_3prong"
    return lab


def _boost_to_rest(p: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """Boost four-momenta ``p`` (n, ..., 4) into the rest frame of ``frame`` (n, 4)."""
    m = np.sqrt(np.maximum(frame[:, 0] ** 2 - np.sum(frame[:, 1:] ** 2, axis=1), 1e-12))
    b = frame[:, 1:] / frame[:, :1]
    g = frame[:, 0] / m
    shape = (-1,) + (1,) * (p.ndim - 2)
    b = b.reshape((*shape, 3))
    g = g.reshape(shape)
    bp = np.sum(b * p[..., 1:], axis=-1)
    b2 = np.sum(b * b, axis=-1)
    e = g * (p[..., 0] - bp)
    coef = np.where(b2 > 0, (g - 1.0) * bp / np.where(b2 > 0, b2, 1.0), 0.0) - g * p[..., 0]
    return np.concatenate([e[..., None], p[..., 1:] + coef[..., None] * b], axis=-1)


def tau_observables(tau: np.ndarray, ids: np.ndarray, p4: np.ndarray) -> dict[str, np.ndarray]:
    """Charged-prong momentum (rest frame, lab), visible mass, leading prong lab four-momentum."""
    a = np.abs(ids)
    charged = np.isin(a, CHARGED)
    visible = (a != 0) & ~np.isin(a, (12, 14, 16))
    rest = _boost_to_rest(p4, tau)
    p_rest = np.linalg.norm(rest[..., 1:], axis=-1)
    p_lab = np.linalg.norm(p4[..., 1:], axis=-1)
    lead = np.argmax(np.where(charged, p_lab, -1.0), axis=1)
    rows = np.arange(len(ids))
    vis = np.sum(np.where(visible[..., None], p4, 0.0), axis=1)
    m_vis = np.sqrt(np.maximum(vis[:, 0] ** 2 - np.sum(vis[:, 1:] ** 2, axis=1), 0.0))
    return {
        "p_rest": p_rest[rows, lead],
        "p_lab": p_lab[rows, lead],
        "m_vis": m_vis,
        "prong": p4[rows, lead],
        "n_charged": charged.sum(axis=1),
    }


def chi2_ndf(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """chi^2 of two unweighted histograms of different sizes (shape comparison)."""
    na, nb = a.sum(), b.sum()
    ok = (a + b) > 0
    if na == 0 or nb == 0:
        return float("nan"), 0
    k1, k2 = np.sqrt(nb / na), np.sqrt(na / nb)
    c2 = np.sum((k1 * a[ok] - k2 * b[ok]) ** 2 / (a[ok] + b[ok]))
    return float(c2), int(ok.sum() - 1)


def load_pythia(pattern: str) -> dict[str, np.ndarray]:
    files = sorted(glob.glob(pattern))
    if not files:
        raise SystemExit(f"no Pythia reference matches {pattern}: run pythia_tautau_reference.py")
    data = [np.load(f) for f in files]
    keys = ("tm_p4", "tm_id", "tm_kp4", "tp_p4", "tp_id", "tp_kp4")
    return {k: np.concatenate([d[k] for d in data]) for k in keys}


def ours(n: int, seed: int, spin: bool, channels: list[str] | None) -> dict[str, np.ndarray]:
    """Our generator with the per-tau products in the layout of the Pythia reference.

    ``tautau.generate`` returns the two ISR photons, then the k products of the tau-, then
    the k products of the tau+ (pi0 already decayed to photons); the mode labels come from the
    generator's own mode codes (other modes: 'other').
    """
    from zprime.generators import tau_decays as td
    from zprime.generators import tautau

    options: dict[str, object] = {"spin_correlations": spin, "keep_neutrinos": True}
    if channels:
        options["channels"] = channels
    out: dict[str, list[np.ndarray]] = {}
    names = {code: name for name, code in td.MODE_CODES.items()}
    rng = np.random.default_rng(seed)
    done = 0
    while done < n:
        m = min(200_000, n - done)
        ev = tautau.generate(m, rng, options)
        k = (ev.pdg.shape[1] - 2) // 2
        parts = {
            "tm_p4": ev.tau_minus,
            "tm_id": ev.pdg[:, 2 : 2 + k],
            "tm_kp4": ev.p4[:, 2 : 2 + k],
            "tp_p4": ev.tau_plus,
            "tp_id": ev.pdg[:, 2 + k :],
            "tp_kp4": ev.p4[:, 2 + k :],
            "tm_mode": np.array([names[c] for c in ev.tau_minus_mode], dtype=object),
            "tp_mode": np.array([names[c] for c in ev.tau_plus_mode], dtype=object),
        }
        for key, value in parts.items():
            out.setdefault(key, []).append(value)
        done += m
    res = {}
    for key, chunks in out.items():
        if key.endswith("_id") or key.endswith("_kp4"):  # pad to a common width
            width = max(c.shape[1] for c in chunks)
            chunks = [
                np.pad(c, [(0, 0), (0, width - c.shape[1])] + [(0, 0)] * (c.ndim - 2))
                for c in chunks
            ]
        res[key] = np.concatenate(chunks)
    for tag in ("tm", "tp"):
        mode = res[f"{tag}_mode"]
        res[f"{tag}_mode"] = np.where(np.isin(mode, MODES), mode, "other")
    return res


def x_fractions(prong: np.ndarray) -> np.ndarray:
    return lab_to_cm(prong)[:, 0] / (0.5 * SQRT_S)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", default="validation/reference/pythia_tautau_[0-9]*.npz")
    parser.add_argument("--reference-pipi", default="validation/reference/pythia_tautau_pipi.npz")
    parser.add_argument("--out", type=Path, default=Path("validation/out/tautau"))
    parser.add_argument("--seed", type=int, default=99)
    parser.add_argument("--presel-pythia-events", type=int, default=0, help="0: skip")
    parser.add_argument("--presel-ours-events", type=int, default=20_000_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--presel-only", action="store_true", help="only the preselected yields")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, object] = {}
    if args.presel_only:
        rows = preselected_yields(args)
        (args.out / "presel_summary.json").write_text(json.dumps(rows, indent=1))
        return

    py = load_pythia(args.reference)
    n = len(py["tm_p4"])
    us = ours(n, args.seed, True, None)
    samples = {"zprime": us, "Pythia": py}
    obs = {}
    for label, d in samples.items():
        per = {}
        for tag in ("tm", "tp"):
            o = tau_observables(d[f"{tag}_p4"], d[f"{tag}_id"], d[f"{tag}_kp4"])
            o["mode"] = d[f"{tag}_mode"] if f"{tag}_mode" in d else pythia_modes(d[f"{tag}_id"])
            per[tag] = o
        obs[label] = per
    print(f"{n:,} tau pairs each")

    # branching fractions per mode
    brs = {}
    for label, per in obs.items():
        modes = np.concatenate([per["tm"]["mode"], per["tp"]["mode"]])
        brs[label] = {m: float(np.mean(modes == m)) for m in (*MODES, "other")}
    summary["mode_fractions"] = brs
    for m in (*MODES, "other"):
        print(f"  fraction {m:10s}: zprime {brs['zprime'][m]:.4f}  Pythia {brs['Pythia'][m]:.4f}")

    # per-mode spectra
    specs = [
        ("p_rest", np.linspace(0.0, 0.9, 46), "charged prong p (tau rest frame) [GeV]"),
        ("p_lab", np.linspace(0.0, 8.0, 41), "charged prong p (lab) [GeV]"),
        ("m_vis", np.linspace(0.0, 1.8, 37), "visible mass [GeV]"),
    ]
    fig, axes = plt.subplots(len(MODES), len(specs), figsize=(13, 3 * len(MODES)))
    chi2 = {}
    for i, mode in enumerate(MODES):
        for j, (key, edges, xlabel) in enumerate(specs):
            hs = {}
            for label, per in obs.items():
                x = np.concatenate([per[t][key][per[t]["mode"] == mode] for t in ("tm", "tp")])
                hs[label] = np.histogram(x, edges)[0].astype(float)
            c2, ndf = chi2_ndf(hs["zprime"], hs["Pythia"])
            chi2[f"{mode}_{key}"] = [c2, ndf]
            ax = axes[i, j]
            centres = 0.5 * (edges[1:] + edges[:-1])
            for label, h in hs.items():
                norm = h.sum() or 1.0
                ax.errorbar(
                    centres, h / norm, np.sqrt(h) / norm, drawstyle="steps-mid", label=label
                )
            ax.set_title(f"{mode}: chi2/ndf = {c2:.0f}/{ndf}", fontsize=9)
            ax.set_xlabel(xlabel, fontsize=8)
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out / "tautau_modes.png", dpi=90)

    # opening angle of the two prongs (1-prong x 1-prong)
    edges = np.linspace(0.0, np.pi, 46)
    hs = {}
    for label, per in obs.items():
        ok = (per["tm"]["n_charged"] == 1) & (per["tp"]["n_charged"] == 1)
        a, b = per["tm"]["prong"][ok, 1:], per["tp"]["prong"][ok, 1:]
        cosang = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        hs[label] = np.histogram(np.arccos(np.clip(cosang, -1, 1)), edges)[0].astype(float)
    chi2["opening_angle"] = list(chi2_ndf(hs["zprime"], hs["Pythia"]))

    # spin correlation: pi nu / pi nu
    pp = np.load(args.reference_pipi)
    n_pp = len(pp["tm_p4"])
    corr = {}
    xs = {}
    for label, d in (
        ("Pythia", pp),
        ("zprime", ours(n_pp, args.seed + 1, True, ["pi"])),
        ("zprime, no spin correlation", ours(n_pp, args.seed + 2, False, ["pi"])),
    ):
        om = tau_observables(d["tm_p4"], d["tm_id"], d["tm_kp4"])
        op = tau_observables(d["tp_p4"], d["tp_id"], d["tp_kp4"])
        x1, x2 = x_fractions(om["prong"]), x_fractions(op["prong"])
        r = float(np.corrcoef(x1, x2)[0, 1])
        corr[label] = [r, float((1 - r**2) / np.sqrt(len(x1) - 1))]
        xs[label] = (x1, x2)
        print(f"pi nu / pi nu: corr(x+, x-) = {r:+.4f} +- {corr[label][1]:.4f} ({label})")
    summary["pipi_correlation"] = corr
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    e2 = np.linspace(0.0, 1.05, 22)
    ref2d = np.histogram2d(*xs["Pythia"], bins=(e2, e2))[0]
    for ax, (label, (x1, x2)) in zip(axes, xs.items(), strict=True):
        h2 = np.histogram2d(x1, x2, bins=(e2, e2))[0]
        c2, ndf = chi2_ndf(h2.ravel(), ref2d.ravel())
        chi2[f"pipi_2d_{label}"] = [c2, ndf]
        ax.imshow(h2.T, origin="lower", extent=(0, 1.05, 0, 1.05), aspect="auto")
        ax.set_title(
            f"{label}: r = {corr[label][0]:+.3f}, chi2/ndf vs Pythia {c2:.0f}/{ndf}", fontsize=8
        )
        ax.set_xlabel("x(pi-)")
        ax.set_ylabel("x(pi+)")
    fig.tight_layout()
    fig.savefig(args.out / "tautau_pipi_correlation.png", dpi=90)
    summary["chi2_ndf"] = chi2
    for k, (c2, ndf) in chi2.items():
        print(f"  chi2/ndf {k:28s} {c2:8.1f} / {ndf}")
    if args.presel_pythia_events > 0:
        summary["preselected_yields"] = preselected_yields(args)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))


M2_RANGES = ((-0.5, 9.0), (9.0, 36.0), (36.0, 81.0))


def preselected_yields(args: argparse.Namespace) -> list[dict[str, object]]:
    """Preselected yields in the PRL's three M_recoil^2 ranges: Pythia's ``tautau_pythia``
    (decays forced to e, mu, pi nu) against ours with the same forced channels, both through
    the default generator filter, the fast detector and the preselection."""
    from zprime.analyses.invisible_zprime.selection import select_file
    from zprime.config import config_from_dict, default_config
    from zprime.detector.simulation import simulate_file
    from zprime.generators import backgrounds as bg
    from zprime.io.events import read_events

    base = default_config()
    filt = base.backgrounds.samples["tautau"].filter.model_dump(mode="json")
    cfg = config_from_dict(
        {
            "backgrounds": {
                "samples": {
                    "tautau_pythia": {"filter": filt, "chunk_size": 10_000},
                    "tautau": {"options": {"channels": ["e", "mu", "pi"]}},
                }
            }
        }
    )
    lumi = cfg.luminosity_fb
    sizes = {"tautau_pythia": args.presel_pythia_events, "tautau": args.presel_ours_events}
    out = args.out / "presel"
    yields = {}
    for name, n in sizes.items():
        gen = out / "events" / f"{name}.parquet"
        if not gen.exists():
            bg.generate_sample(name, n, out / "events", config=cfg, workers=args.workers)
        reco = out / "reco" / f"{name}.parquet"
        if not reco.exists():
            simulate_file(gen, out / "reco", detector="simulation", seed=3, config=cfg)
        sel, _ = select_file(
            reco, out / "selected", cfg.selection, luminosity_fb=lumi, skip=["punzinet"]
        )
        ev = read_events(sel, ["weight", "m_recoil2"])
        yields[name] = (np.asarray(ev["m_recoil2"]), np.asarray(ev["weight"]) * lumi)
    rows = []
    for lo, hi in M2_RANGES:
        row: dict[str, object] = {"range": [lo, hi]}
        for name, (m2, w) in yields.items():
            k = (m2 >= lo) & (m2 < hi)
            row[name] = [float(w[k].sum()), float(np.sqrt(np.sum(w[k] ** 2))), int(k.sum())]
        a, b = row["tautau"], row["tautau_pythia"]
        ratio = a[0] / b[0] if b[0] else float("nan")  # type: ignore[index]
        err = ratio * float(np.hypot(a[1] / a[0], b[1] / b[0])) if a[0] and b[0] else 0.0  # type: ignore[index]
        row["ratio"] = [ratio, err]
        rows.append(row)
        print(
            f"preselected tau tau (e/mu/pi forced), M^2 in [{lo}, {hi}): ours {a[0]:.4g} +- "  # type: ignore[index]
            f"{a[1]:.2g}, Pythia {b[0]:.4g} +- {b[1]:.2g}, ratio {ratio:.3f} +- {err:.3f}"  # type: ignore[index]
        )
    return rows


if __name__ == "__main__":
    main()
