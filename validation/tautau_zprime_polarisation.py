#!/usr/bin/env python3
"""How much the Z' polarisation, which the signal generator does not track, can move the
tau-tau search's Z' efficiency.

The generator decays the Z' isotropically in its rest frame with the polarisation-averaged tau
spin correlations (:mod:`zprime.generators.x_decays`, "Approximation (vector)"). The produced Z'
is polarised, so the true tau direction in the Z' rest frame follows a distribution between the
two extreme helicity states (quantisation axis: the Z' flight direction in the lab; c the cosine
of the tau- direction to it, beta the tau velocity in the Z' frame):

- transverse (helicity +-1): ``W_T(c) = (1 + c^2) + (1 - beta^2)(1 - c^2)``;
- longitudinal (helicity 0): ``W_L(c) = 2 (1 - c^2) + 2 (1 - beta^2) c^2``.

Both integrate to the same rate and ``(2 W_T + W_L) / 3`` is isotropic (the unpolarised
average the generator uses); the helicity-flip terms ``(1 - beta^2)`` are the tau-mass terms,
in the proportion the averaged correlation ``C_L = (1 + beta^2) / (3 - beta^2)`` of
:func:`zprime.generators.x_decays.correlation_matrix` fixes. Reweighting the generated events by
``W_T`` or ``W_L`` (normalised to mean one) gives the efficiency of a Z' fully transverse or
fully longitudinal along its flight direction. A Z' aligned along another axis (the beam) has a
distribution of the same form about that axis, so the spread is an estimate of the size of the
effect, not a strict bound. The spin correlations are kept at their average: this measures the
effect of the decay angle, the one that moves the tau decay products in and out of the
acceptance.

For each mass: fresh Z' events (the run's generator settings), the run's simulation detector and
pre-selection, the run's range network, and the efficiency (of the generated events) after the
pre-selection, after the network, and after the network within 0.15 GeV of the mass, for the
three weightings.

    python validation/tautau_zprime_polarisation.py RUN [--masses 4 6 8 9.6] [--n 40000]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import awkward as ak
import numpy as np

from zprime.analyses.tautau_resonance.networks import load
from zprime.analyses.tautau_resonance.selection import FEATURES, select
from zprime.analyses.tautau_resonance.stages import selection_of
from zprime.config import Config
from zprime.detector.simulation import simulate
from zprime.generators.signal import SignalGenerator
from zprime.generators.x_decays import decay_x_to_tautau, event_particles
from zprime.physics.constants import M_TAU


def helicity_weights(x_p4: np.ndarray, tau_minus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(w_T, w_L), mean one over the sphere, from the lab momenta of the Z' and the tau-."""
    m = np.sqrt(np.maximum(x_p4[:, 0] ** 2 - np.sum(x_p4[:, 1:] ** 2, axis=1), 0.0))
    px = np.linalg.norm(x_p4[:, 1:], axis=1)
    n_hat = x_p4[:, 1:] / px[:, None]
    beta_x, gamma_x = px / x_p4[:, 0], x_p4[:, 0] / m
    p_par = np.sum(tau_minus[:, 1:] * n_hat, axis=1)
    p_star = np.sqrt(np.maximum(0.25 * m * m - M_TAU**2, 0.0))
    c = np.clip(gamma_x * (p_par - beta_x * tau_minus[:, 0]) / p_star, -1.0, 1.0)
    flip = 1.0 - (p_star / (0.5 * m)) ** 2
    norm = 4.0 / 3.0 + 2.0 * flip / 3.0
    w_t = ((1.0 + c * c) + flip * (1.0 - c * c)) / norm
    w_l = (2.0 * (1.0 - c * c) + 2.0 * flip * c * c) / norm
    return w_t, w_l


def events_with_weights(
    gen: SignalGenerator, n: int, rng: np.random.Generator
) -> tuple[ak.Array, np.ndarray, np.ndarray]:
    """Generator-level events in the event schema (muons, ISR photons, visible tau products) and
    their helicity weights."""
    p4, keep, _ = gen.lab_momenta(n, rng)
    dec = decay_x_to_tautau(p4[:, 2], "vector", rng)
    w_t, w_l = helicity_weights(p4[:, 2], dec.tau_minus)
    particles = event_particles(p4, keep, dec)
    events = ak.zip(
        {"event": np.arange(n, dtype=np.int64), "weight": np.ones(n), "particles": particles},
        depth_limit=1,
    )
    return events, w_t, w_l


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--masses", type=float, nargs="+", default=[4.0, 6.0, 8.0, 9.6])
    ap.add_argument("--n", type=int, default=40_000)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    cfg = Config.model_validate(json.loads((args.run / "provenance.json").read_text())["config"])
    sel = selection_of(cfg)
    edges = [float(e) for e in cfg.tautau.networks.edges_gev]
    nets = [load(args.run / "networks" / f"tautau_range_{i}.pt") for i in range(len(edges) - 1)]
    rows = []
    print(f"{'M (GeV)':>8} {'step':<22}{'isotropic':>10}{'transverse':>12}{'longitudinal':>14}")
    for k, mass in enumerate(args.masses):
        rng = np.random.default_rng([args.seed, k])
        gen = SignalGenerator(mass, isr=cfg.tautau.signal.isr, seed=args.seed + k)
        events, w_t, w_l = events_with_weights(gen, args.n, rng)
        # closure: over the generated (isotropic) decays both weights average to one
        print(
            f"{mass:>8.2f} {'mean weight (T, L)':<22}{'':>10}{w_t.mean():>12.3f}{w_l.mean():>14.3f}"
        )
        reco = simulate(events, cfg.detector.use, rng, config=cfg)
        cand, _ = select(reco, sel)
        ev = cand["event"].astype(np.int64)
        i = min(int(np.searchsorted(edges, mass, side="right")) - 1, len(nets) - 1)
        x = np.stack([cand[f] for f in FEATURES], axis=1)
        passed = nets[i].passes(x) if len(ev) else np.zeros(0, dtype=bool)
        near = passed & (np.abs(cand["m_recoil"] - mass) < 0.15)
        row: dict[str, object] = {"mass_gev": mass, "n": args.n}
        for step, mask in (("pre-selection", None), ("network", passed), ("network, +-0.15", near)):
            # an event counts once, whichever of its candidates passes
            chosen = np.unique(ev if mask is None else ev[mask])
            eff = [float(np.sum(w[chosen]) / args.n) for w in (np.ones(args.n), w_t, w_l)]
            row[step] = eff
            print(
                f"{mass:>8.2f} {step:<22}{eff[0]:>10.4f}{eff[1] / eff[0]:>12.3f}"
                f"{eff[2] / eff[0]:>14.3f}"
                if eff[0] > 0
                else f"{mass:>8.2f} {step:<22}{0.0:>10.4f}"
            )
        err = math.sqrt(row["network, +-0.15"][0] / args.n)  # type: ignore[index]
        row["binomial_error_network_window"] = err
        rows.append(row)
    print("columns: efficiency (isotropic, as generated); ratios transverse / isotropic and")
    print("longitudinal / isotropic (helicity states along the Z' flight direction)")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
