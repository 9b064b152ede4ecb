"""Orchestration of the analysis stages behind ``zprime run``.

The stages that exist so far (issue 3, the foundation) are run in order:

1. the signal cross-section table sigma(e+e- -> mu+ mu- Z') at g' = 1 over the configured masses,
   with B(Z' -> invisible) for the vanilla and fully invisible models and the (g-2)_mu band;
2. unweighted signal samples at ``signal.masses_gev``.

Every output is written atomically under the output directory together with ``provenance.json``
(configuration, seeds, package versions, git commit). Later stages (backgrounds, simulation,
selection, training, control samples, templates, fits, report) are added here as they land.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from zprime._util import atomic_path, provenance, write_json_atomic
from zprime.config import Config, default_config

__all__ = ["run", "xsec_summary"]


def xsec_summary(config: Config) -> list[dict[str, float]]:
    """Cross section, B(invisible) and the (g-2)_mu band at the configured signal masses.

    Returns one row per mass with ``mass_gev``, ``sigma_g1_fb`` (sigma(e+e- -> mu mu Z') at
    g' = 1 with ISR, from the cached table), ``br_inv_vanilla``, ``br_inv_fully_invisible`` and
    the band ``g2_low``/``g2_high`` of g' that explains Delta a_mu within 2 sigma.
    """
    from zprime.model import branching_invisible, g2_band
    from zprime.signal import load_xsec_table

    table = load_xsec_table()
    masses = np.asarray(config.signal.masses_gev, dtype=float)
    sigma = table.sigma_fb(masses, g=1.0)
    br_van = branching_invisible(masses, "vanilla")
    br_inv = branching_invisible(masses, "fully_invisible")
    g_lo, _, g_hi = g2_band(masses)
    return [
        {
            "mass_gev": float(m),
            "sigma_g1_fb": float(s),
            "br_inv_vanilla": float(bv),
            "br_inv_fully_invisible": float(bi),
            "g2_low": float(lo),
            "g2_high": float(hi),
        }
        for m, s, bv, bi, lo, hi in zip(
            masses, np.broadcast_to(sigma, masses.shape), np.broadcast_to(br_van, masses.shape),
            np.broadcast_to(br_inv, masses.shape), g_lo, g_hi, strict=True
        )
    ]


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())


def run(
    config: Config | None = None,
    out_dir: str | Path = "results",
    *,
    quick: bool = False,
    console: Console | None = None,
) -> dict[str, Path]:
    """Run every stage that exists on ``config`` and write the results under ``out_dir``.

    Parameters
    ----------
    config
        The configuration (default: the built-in PRL analysis).
    out_dir
        Output directory; created if needed.
    quick
        A reduced run (fewer signal events) for smoke tests.
    console
        Where progress and the summary go (default: stderr).

    Returns
    -------
    dict
        Names of the outputs and their paths.
    """
    from zprime.signal import write_signal

    cfg = config or default_config()
    con = console or Console(stderr=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    written: dict[str, Path] = {}

    rows = xsec_summary(cfg)
    written["xsec"] = out / "xsec.csv"
    _write_csv(written["xsec"], rows)
    table = Table(title="e+e- -> mu+ mu- Z' at sqrt(s) = 10.58 GeV (g' = 1, ISR)")
    for col in ("M_Z' [GeV]", "sigma [fb]", "B(inv) vanilla", "B(inv) fully inv.", "(g-2) band g'"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            f"{r['mass_gev']:.3f}",
            f"{r['sigma_g1_fb']:.4g}",
            f"{r['br_inv_vanilla']:.3f}",
            f"{r['br_inv_fully_invisible']:.3f}",
            f"{r['g2_low']:.2e} - {r['g2_high']:.2e}",
        )
    con.print(table)

    n_events = 2000 if quick else cfg.signal.events_per_mass
    masses = cfg.signal.masses_gev[:2] if quick else cfg.signal.masses_gev
    for i, mass in enumerate(masses):
        path = write_signal(
            mass,
            n_events,
            out / "events",
            seed=int(np.random.SeedSequence([cfg.seed, 3, i]).generate_state(1)[0]),
            isr=cfg.signal.isr,
            alpha=1.0 / cfg.signal.alpha_inverse,
        )
        written[f"signal_{mass:g}"] = path

    written["provenance"] = write_json_atomic(
        out / "provenance.json",
        provenance(cfg.to_dict(), quick=quick, seconds=round(time.time() - started, 2),
                   outputs={k: str(v) for k, v in written.items()}),
    )
    con.print(f"wrote {len(written)} outputs under [bold]{out}[/]:")
    for name, path in written.items():
        con.print(f"  {name}: {path}")
    return written
