#!/usr/bin/env python3
"""Pythia 8 reference sample of e+e- -> tau+ tau- (gamma) for the validation of zprime's tau-pair
generator (``zprime.generators.tautau``; ``validation/compare_tautau.py`` reads what this writes).

Pythia 8.317 with the settings of the ``tautau_pythia`` sample (gamma* only, lepton-PDF ISR,
QED FSR, spin-correlated tau decays ``TauDecays:mode = 1``), 7 GeV e- on 4 GeV e+ in the lab.
For each event and each tau the script stores the decaying tau's lab four-momentum and its
direct decay products (PDG code and four-momentum, up to 6, pi0 undecayed), so that the
comparison can form any observable in the tau rest frame or in the lab::

    python validation/pythia_tautau_reference.py -n 200000 --seed 201 \
        --out validation/reference/pythia_tautau_1.npz          # (five of these: 1e6 pairs)
    python validation/pythia_tautau_reference.py -n 300000 --seed 101 --force-pipi \
        --out validation/reference/pythia_tautau_pipi.npz

Pythia's correlated tau decays run at 200-500 events/s on one core, so 1e6 events take about an
hour; ``--force-pipi`` forces tau -> pi nu for both taus (the spin-correlation observable).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import awkward as ak
import numpy as np
import pythia8mc

BEAMS = [
    "Beams:idA = 11",
    "Beams:idB = -11",
    "Beams:frameType = 2",
    "Beams:eA = 7.0",
    "Beams:eB = 4.0",
    "Random:setSeed = on",
    "Next:numberCount = 0",
    "Print:quiet = on",
]
PROCESS = [
    "WeakSingleBoson:ffbar2gmZ = on",
    "WeakZ0:gmZmode = 1",
    "23:onMode = off",
    "23:onIfAny = 15",
    "23:mMin = 3.6",
    "PhaseSpace:mHatMin = 3.6",
    "TauDecays:mode = 1",
]
MAX_PRODUCTS = 6


def _taus(prt: ak.Array, charge_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The decaying tau of id ``charge_id`` per event: its p4 and its direct products."""
    ids = prt.id
    d1 = prt.daughter1
    n = ak.num(ids)
    # the last copy of the tau: the one whose first daughter is not a tau
    idx_local = ak.local_index(ids)
    safe_d1 = ak.where(d1 > 0, d1, 0)
    child_id = ids[safe_d1]
    is_tau = (ids == charge_id) & (d1 > 0) & (abs(child_id) != 15)
    tau_idx = ak.firsts(idx_local[is_tau])
    tau_idx = ak.to_numpy(ak.fill_none(tau_idx, -1))
    assert np.all(tau_idx >= 0), "an event without a decaying tau"
    del n
    p = prt.p
    sel = ak.from_regular(tau_idx[:, None])
    tau_p4 = np.stack(
        [ak.to_numpy(ak.flatten(p[f][sel])) for f in ("e", "px", "py", "pz")], axis=-1
    )
    is_child = prt.mother1 == tau_idx  # broadcasts one index per event
    kids = prt[is_child]
    kids = ak.pad_none(kids, MAX_PRODUCTS, clip=True)
    kid_id = ak.to_numpy(ak.fill_none(kids.id, 0)).astype(np.int32)
    kid_p4 = np.stack(
        [ak.to_numpy(ak.fill_none(kids.p[f], 0.0)) for f in ("e", "px", "py", "pz")], axis=-1
    )
    return tau_p4, kid_id, kid_p4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=1_000_000, help="tau pairs")
    parser.add_argument("--seed", type=int, default=4711)
    parser.add_argument("--force-pipi", action="store_true", help="both taus -> pi nu")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    pythia = pythia8mc.Pythia("", False)
    lines = BEAMS + PROCESS + [f"Random:seed = {args.seed}"]
    if args.force_pipi:
        lines += ["15:onMode = off", "15:onIfMatch = 16 -211"]
    for line in lines:
        if not pythia.readString(line):
            raise SystemExit(f"Pythia refused '{line}'")
    if not pythia.init():
        raise SystemExit("Pythia initialisation failed")
    started = time.time()
    out: dict[str, list[np.ndarray]] = {
        k: [] for k in ("tm_p4", "tm_id", "tm_kp4", "tp_p4", "tp_id", "tp_kp4", "m_hat")
    }
    done = 0
    while done < args.n:
        m = min(20_000, args.n - done)
        batch = pythia.nextBatch(m, 10.0)
        prt = batch.prt
        for tag, cid in (("tm", 15), ("tp", -15)):
            tau, kid_id, kid_p4 = _taus(prt, cid)
            out[f"{tag}_p4"].append(tau)
            out[f"{tag}_id"].append(kid_id)
            out[f"{tag}_kp4"].append(kid_p4)
        out["m_hat"].append(ak.to_numpy(batch.info.mHat).astype(np.float64))
        done += m
        rate = done / (time.time() - started)
        print(f"{done} / {args.n} events, {rate:.0f} events/s", flush=True)
    info = pythia.infoPython()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".part.npz")
    np.savez_compressed(
        tmp,
        **{k: np.concatenate(v) for k, v in out.items()},
        sigma_fb=float(info.sigmaGen()) * 1e12,
        seconds=time.time() - started,
        force_pipi=args.force_pipi,
    )
    tmp.replace(args.out)
    print(f"wrote {args.out}: {done} events in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
