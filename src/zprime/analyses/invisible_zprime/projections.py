"""Expected limits projected to other integrated luminosities (issue 8, ``zprime run --lumi``).

The Belle II talks motivate this: the 2020 seminar (M. Campajola, "Search for an invisible Z'
in mu+ mu- plus missing energy final states at Belle II", ``shared/papers/
talk-2020-invisible-zprime-belle2.md``) shows a "short term projection" with a "preliminary
(conservative) systematics estimate" and the 2022 overview (P. Feichtinger, "Dark sector
searches at Belle II", ``talk-2022-dark-sector-belle2.md``) the goal of "50 ab^-1 in the next
decade". Here the templates of the fit stage (made at ``L0``, 79.7 fb^-1 by default: PRL 130,
231801) are scaled to a luminosity ``L`` and the *expected* 90% CL limits on
sigma(e+e- -> mu+ mu- Z') x B(Z' -> invisible), in fb, are computed with the same workspace
builder and the same asymptotic CLs engine as the fit stage:

- signal and background templates are multiplied by ``L / L0`` (both are yields at ``L0``);
- the templates' Monte Carlo statistical uncertainty (``staterror``) keeps its *relative* size:
  it is the simulation's, which does not grow with the data (its variance is multiplied by
  ``(L / L0)^2``). ``mc_stat="drop"`` leaves it out (a simulation that grows with the data);
- the relative systematic uncertainties (PRL values: signal efficiency, signal shape,
  background shape, photon veto, luminosity) are ``"kept"`` as they are, ``"scaled"`` by
  ``sqrt(L0 / L)`` (all but the luminosity's come from control samples whose size grows with
  ``L``; the luminosity's 1% is a measurement systematic and is kept), optionally never below
  ``min(floor, value at L0)``, or removed (``"none"``);
- the data are the Asimov background-only dataset at ``L`` (the nominal background), whose
  asymptotic limits are the expected median and the +-1, +-2 sigma band
  (:func:`zprime.stats.scan_limits`).

For every requested mass the hypothesis of the template grid nearest to it is used.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zprime._util import atomic_path
from zprime.analyses.invisible_zprime.figures import projection_figure
from zprime.analyses.invisible_zprime.templates import (
    SystematicsTable,
    TemplateSet,
    WindowTemplates,
    read_templates,
)
from zprime.config import Config
from zprime.errors import InputError
from zprime.report.plots import save
from zprime.stats import build_workspace, scan_limits

__all__ = [
    "BELLE2_GOAL_FB",
    "MC_STAT_OPTIONS",
    "SYSTEMATICS_OPTIONS",
    "ProjectionRow",
    "ProjectionTable",
    "background_mc_luminosity",
    "plot_projection",
    "project_limits",
    "project_systematics",
    "project_templates",
    "projections_from_config",
    "scale_window",
    "smooth_background",
    "write_projection",
]

log = logging.getLogger(__name__)

BELLE2_GOAL_FB = 50_000.0
"""Belle II's target data set, 50 ab^-1 (talk-2022-dark-sector-belle2.md: "plan to collect
50 ab^-1 in the next decade"; talk-2020-invisible-zprime-belle2.md: "Integrate up to 50 ab^-1")."""
SYSTEMATICS_OPTIONS = ("kept", "scaled", "none")
MC_STAT_OPTIONS = ("keep", "drop")
_MAX_REL = 0.99
"""Cap of a relative uncertainty grown by 'scaled' at L < L0: a Gaussian template variation of
100% or more would make the down-shifted template (or efficiency) negative."""
_BANDS = ("m2", "m1", "median", "p1", "p2")


# --------------------------------------------------------------------------- results
@dataclass
class ProjectionRow:
    """Expected limits of one hypothesis at one luminosity."""

    mass_requested_gev: float
    mass_gev: float
    """The grid hypothesis used (nearest to the requested mass)."""
    name: str
    luminosity_fb: float
    expected_fb: tuple[float, float, float, float, float]
    """Expected 90% CL upper limits on sigma x B in fb at -2, -1, 0, +1, +2 sigma."""
    signal_per_fb: float
    """Expected signal events in the window per fb of sigma x B at this luminosity."""
    background: float
    """Expected background events in the window at this luminosity."""
    background_mc_lumi_fb: float = math.inf
    """Luminosity equivalent of the window's background simulation, ``L0 B / V`` (B, V: the
    window's expected background and its MC variance at ``L0``), fb^-1."""
    status: str = "ok"
    message: str = ""

    @property
    def median_fb(self) -> float:
        """The median expected limit, fb."""
        return self.expected_fb[2]


@dataclass
class ProjectionTable:
    """Expected limits versus luminosity at a few masses (:func:`project_limits`)."""

    rows: list[ProjectionRow]
    luminosity0_fb: float
    """The luminosity the templates were made at, fb^-1."""
    systematics: str
    mc_stat: str
    scaled_floor: float = 0.0
    smooth: bool = False
    """Backgrounds smoothed (:func:`smooth_background`)."""
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    def masses(self) -> list[float]:
        """The requested masses, in order."""
        return list(dict.fromkeys(r.mass_requested_gev for r in self.rows))

    def luminosities(self) -> list[float]:
        """The luminosities, in order."""
        return list(dict.fromkeys(r.luminosity_fb for r in self.rows))

    def for_mass(self, mass_gev: float) -> list[ProjectionRow]:
        """The rows of one requested mass, by luminosity."""
        rows = [r for r in self.rows if r.mass_requested_gev == mass_gev]
        return sorted(rows, key=lambda r: r.luminosity_fb)

    def expected(self, mass_gev: float) -> tuple[np.ndarray, np.ndarray]:
        """``(luminosities (n,), expected limits (n, 5))`` of one requested mass."""
        rows = self.for_mass(mass_gev)
        return (
            np.array([r.luminosity_fb for r in rows]),
            np.array([r.expected_fb for r in rows], dtype=float).reshape(len(rows), 5),
        )

    def records(self) -> list[dict[str, Any]]:
        """One flat dict per row (the CSV): limits, the ratio to the first luminosity and the
        pure-statistics ``1/sqrt(L)`` extrapolation of the first luminosity's limit."""
        out = []
        for m in self.masses():
            rows = self.for_mass(m)
            first = rows[0]
            for r in rows:
                rec: dict[str, Any] = {
                    "mass_requested_gev": r.mass_requested_gev,
                    "mass_gev": r.mass_gev,
                    "hypothesis": r.name,
                    "luminosity_fb": r.luminosity_fb,
                    **{f"expected_{k}_fb": v for k, v in zip(_BANDS, r.expected_fb, strict=True)},
                    "ratio_to_first": r.median_fb / first.median_fb,
                    "sqrt_l_reference_fb": first.median_fb
                    * math.sqrt(first.luminosity_fb / r.luminosity_fb),
                    "signal_per_fb": r.signal_per_fb,
                    "background": r.background,
                    "background_mc_lumi_fb": r.background_mc_lumi_fb,
                    "systematics": self.systematics,
                    "mc_stat": self.mc_stat,
                    "smooth_background": self.smooth,
                    "luminosity0_fb": self.luminosity0_fb,
                    "status": r.status,
                    "message": r.message,
                }
                out.append(rec)
        return out


# --------------------------------------------------------------------------- scaling
def project_systematics(
    table: SystematicsTable,
    factor: float,
    systematics: str = "kept",
    *,
    mc_stat: str = "keep",
    floor: float = 0.0,
) -> SystematicsTable:
    """The systematic uncertainties at ``L = factor * L0``.

    Parameters
    ----------
    table
        The uncertainties of the templates (at ``L0``).
    factor
        ``L / L0``.
    systematics
        ``"kept"``: unchanged; ``"scaled"``: every relative uncertainty from control samples
        (signal efficiency, signal shape, background shape, photon veto; PRL "Systematic
        uncertainties") times ``sqrt(1 / factor)``, not below ``min(floor, its L0 value)`` and
        capped at 99%; the luminosity uncertainty is kept (PRL ref. [27], not statistical);
        ``"none"``: all zero.
    mc_stat
        ``"keep"``: as in ``table``; ``"drop"``: no MC statistical uncertainty.
    floor
        Floor of the ``"scaled"`` uncertainties (relative); 0: none.
    """
    if systematics not in SYSTEMATICS_OPTIONS:
        raise InputError(
            f"projections.systematics: {systematics!r} is not one of "
            + ", ".join(SYSTEMATICS_OPTIONS)
        )
    if mc_stat not in MC_STAT_OPTIONS:
        raise InputError(
            f"projections.mc_stat: {mc_stat!r} is not one of " + ", ".join(MC_STAT_OPTIONS)
        )
    if not (math.isfinite(floor) and 0.0 <= floor < 1.0):
        raise InputError(f"projections.scaled_floor: {floor!r} is not in [0, 1)")
    keep_mc = table.mc_stat and mc_stat == "keep"
    if systematics == "kept":
        return dataclasses.replace(table, mc_stat=keep_mc)
    if systematics == "none":
        return dataclasses.replace(
            table,
            signal_efficiency=tuple(0.0 for _ in table.signal_efficiency),
            signal_shape=0.0,
            background_shape=tuple(0.0 for _ in table.background_shape),
            photon_veto_shape=(0.0, 0.0),
            luminosity=0.0,
            mc_stat=keep_mc,
            source=f"{table.source}; projected: no systematics",
        )
    s = math.sqrt(1.0 / factor)

    def sc(r: float) -> float:
        return float(min(max(r * s, min(r, floor)), max(r, _MAX_REL)))

    return dataclasses.replace(
        table,
        signal_efficiency=tuple(sc(r) for r in table.signal_efficiency),
        signal_shape=sc(table.signal_shape),
        background_shape=tuple(sc(r) for r in table.background_shape),
        photon_veto_shape=(sc(table.photon_veto_shape[0]), sc(table.photon_veto_shape[1])),
        mc_stat=keep_mc,
        source=f"{table.source}; projected: scaled by sqrt(L0/L) = {s:.4g}",
    )


def _scaled_hist(h: Any, factor: float) -> Any:
    out = h.copy()
    view = out.view()
    view.value = view.value * factor
    view.variance = view.variance * factor * factor  # MC statistics: relative size kept
    return out


def smooth_background(window: WindowTemplates) -> WindowTemplates:
    """The window with every background template replaced by a smooth one: the sample's yield
    in the window spread uniformly in M_recoil^2 (by bin width) times the window's own
    theta_recoil distribution of that sample; MC variances set to zero.

    For a background simulation much smaller than the data (a few events per window), whose
    empty bins would otherwise count as background-free and make the projected limit fall as
    ``1/L`` for ever. The background normalisation is free in the fit, so the yield's MC
    uncertainty plays no role; the shape is by construction flat in M^2 over the window
    (about 20 resolution units), which the background-shape systematic covers only partly.
    """
    dm2 = np.diff(window.window.m2_edges)
    fm2 = dm2 / dm2.sum()
    out = {}
    for k, h in window.backgrounds.items():
        v = h.values()
        total = float(v.sum())
        th = v.sum(axis=0) / total if total > 0 else np.zeros(v.shape[1])
        sm = h.copy()
        view = sm.view()
        view.value = total * np.outer(fm2, th)
        view.variance = np.zeros_like(v)
        out[k] = sm
    return dataclasses.replace(
        window,
        backgrounds=out,
        notes=[*window.notes, "background smoothed (flat in M^2 over the window)"],
    )


def background_mc_luminosity(window: WindowTemplates) -> float:
    """``L B / V``: the luminosity to which the window's background simulation is equivalent
    (B its expected background, V the MC variance, both at the window's luminosity), fb^-1;
    ``inf`` without MC variance."""
    b = float(window.total_background().sum())
    v = float(sum(h.variances().sum() for h in window.backgrounds.values()))
    return window.luminosity_fb * b / v if v > 0 else math.inf


def scale_window(
    window: WindowTemplates,
    luminosity_fb: float,
    systematics: str = "kept",
    *,
    mc_stat: str = "keep",
    floor: float = 0.0,
    smooth: bool = False,
) -> WindowTemplates:
    """The window's templates at ``luminosity_fb``, with Asimov (expected background) data.

    Signal (per fb of sigma x B) and background yields are multiplied by
    ``L / window.luminosity_fb``, their MC variances by its square (the simulation's relative
    uncertainty does not shrink), the systematics transformed by :func:`project_systematics`;
    ``observed`` is ``None``, i.e. the workspace's data are the total expected background.
    ``smooth``: first :func:`smooth_background`.
    """
    _check_luminosity(luminosity_fb)
    if smooth:
        window = smooth_background(window)
    l0 = window.luminosity_fb
    if not (math.isfinite(l0) and l0 > 0):
        raise InputError(f"templates {window.name}: luminosity_fb {l0!r} is not positive")
    f = luminosity_fb / l0
    return dataclasses.replace(
        window,
        luminosity_fb=float(luminosity_fb),
        signal=_scaled_hist(window.signal, f),
        backgrounds={k: _scaled_hist(h, f) for k, h in window.backgrounds.items()},
        observed=None,
        systematics=project_systematics(
            window.systematics, f, systematics, mc_stat=mc_stat, floor=floor
        ),
        notes=[*window.notes, f"projected from {l0:g} to {luminosity_fb:g} fb^-1 ({systematics})"],
    )


def _check_luminosity(lum: Any) -> float:
    try:
        v = float(lum)
    except (TypeError, ValueError):
        raise InputError(f"projections.luminosities_fb: {lum!r} is not a number") from None
    if not (math.isfinite(v) and v > 0):
        raise InputError(f"projections.luminosities_fb: {lum!r} fb^-1 is not positive")
    return v


def _nearest(tset: TemplateSet, masses_gev: Sequence[float]) -> list[WindowTemplates]:
    if not tset.windows:
        raise InputError("projections: the template directory holds no usable window")
    grid = np.array([w.mass_gev for w in tset.windows])
    lo, hi = float(grid.min()), float(grid.max())
    chosen = []
    for m in masses_gev:
        try:
            v = float(m)
        except (TypeError, ValueError):
            raise InputError(f"projections.masses_gev: {m!r} is not a number") from None
        if not (math.isfinite(v) and lo <= v <= hi):
            raise InputError(
                f"projections.masses_gev: {m!r} GeV is outside the template grid "
                f"[{lo:g}, {hi:g}] GeV"
            )
        chosen.append(tset.windows[int(np.argmin(np.abs(grid - v)))])
    return chosen


def _luminosity0(windows: Sequence[WindowTemplates], config: Config) -> float:
    l0s = {float(w.luminosity_fb) for w in windows}
    if len(l0s) != 1:
        raise InputError(f"projections: the templates were made at several luminosities {l0s}")
    l0 = l0s.pop()
    if not (math.isfinite(l0) and l0 > 0):
        raise InputError(f"projections: template luminosity_fb {l0!r} is not positive")
    if not math.isclose(l0, config.luminosity_fb, rel_tol=1e-9):
        log.warning(
            "projections: templates made at %g fb^-1, config luminosity_fb is %g: scaling from "
            "the templates' %g fb^-1",
            l0,
            config.luminosity_fb,
            l0,
        )
    return l0


# --------------------------------------------------------------------------- projection
def project_templates(
    tset: TemplateSet,
    config: Config,
    *,
    luminosities_fb: Sequence[float],
    masses_gev: Sequence[float],
    systematics: str = "kept",
    mc_stat: str = "keep",
    floor: float = 0.0,
    smooth: bool = False,
) -> ProjectionTable:
    """:func:`project_limits` on templates already in memory (e.g. built by hand)."""
    t0 = time.perf_counter()
    lums = [_check_luminosity(v) for v in luminosities_fb]
    if not lums:
        raise InputError("projections.luminosities_fb: no luminosity given")
    if not list(masses_gev):
        raise InputError("projections.masses_gev: no mass given")
    # validate the options before any fit
    if tset.windows:
        project_systematics(
            tset.windows[0].systematics, 1.0, systematics, mc_stat=mc_stat, floor=floor
        )
    windows = _nearest(tset, masses_gev)
    l0 = _luminosity0(windows, config)
    merge = config.templates.merge_backgrounds
    specs, names, meta = [], [], []
    for m_req, w in zip(masses_gev, windows, strict=True):
        for lum in lums:
            wl = scale_window(w, lum, systematics, mc_stat=mc_stat, floor=floor, smooth=smooth)
            # the floor is expected background at L0 (pipeline fit stage), scaled with it
            spec = build_workspace(
                **wl.workspace_inputs(merge),
                background_floor=config.fit.background_floor * lum / l0,
            )
            specs.append(spec)
            names.append(f"{w.name}@{lum:g}")
            s_tot, b_tot = float(wl.signal.values().sum()), float(wl.total_background().sum())
            meta.append((float(m_req), w, lum, s_tot, b_tot, background_mc_luminosity(w)))
    limits = scan_limits(specs, names=names)
    rows = [
        ProjectionRow(
            mass_requested_gev=m_req,
            mass_gev=float(w.mass_gev),
            name=w.name,
            luminosity_fb=lum,
            expected_fb=tuple(float(v) for v in lim.expected),  # type: ignore[arg-type]
            signal_per_fb=s,
            background=b,
            background_mc_lumi_fb=lmc,
            status=lim.status,
            message=lim.message,
        )
        for (m_req, w, lum, s, b, lmc), lim in zip(meta, limits, strict=True)
    ]
    for r in rows:
        if r.status != "ok":
            log.warning("projection %s at %g fb^-1 failed: %s", r.name, r.luminosity_fb, r.message)
    sparse = {
        r.name: r.background_mc_lumi_fb for r in rows if r.luminosity_fb > r.background_mc_lumi_fb
    }
    if sparse and not smooth:
        log.warning(
            "projections: the background simulation is equivalent to less than the projected "
            "luminosity in %s (%s fb^-1): its relative MC uncertainty is kept as at L0 and bins "
            "it leaves empty count as background-free (see smooth_background)",
            ", ".join(sparse),
            ", ".join(f"{v:.3g}" for v in sparse.values()),
        )
    return ProjectionTable(
        rows=rows,
        luminosity0_fb=l0,
        systematics=systematics,
        mc_stat=mc_stat,
        scaled_floor=floor,
        smooth=smooth,
        seconds=time.perf_counter() - t0,
        info={"merge_backgrounds": merge, "background_floor_l0": config.fit.background_floor},
    )


def project_limits(
    templates_dir: str | Path,
    config: Config,
    *,
    luminosities_fb: Sequence[float],
    masses_gev: Sequence[float],
    systematics: str = "kept",
    mc_stat: str = "keep",
    floor: float = 0.0,
    smooth: bool = False,
) -> ProjectionTable:
    """Expected 90% CL limits on sigma x B (fb) at other luminosities.

    Parameters
    ----------
    templates_dir
        A template directory of the fit stage
        (:func:`zprime.analyses.invisible_zprime.templates.write_templates`).
    config
        The run's configuration (``luminosity_fb`` is checked against the templates' own
        luminosity, which is the one scaled from; ``templates.merge_backgrounds`` and
        ``fit.background_floor`` as in the fit stage).
    luminosities_fb
        Target luminosities, fb^-1 (each > 0).
    masses_gev
        Z' masses; each is replaced by the nearest hypothesis of the grid and must lie within
        the grid's range.
    systematics
        ``"kept"``, ``"scaled"`` (``sqrt(L0/L)``) or ``"none"`` (:func:`project_systematics`).
    mc_stat
        ``"keep"`` (relative MC statistical uncertainty as at ``L0``) or ``"drop"``.
    floor
        Floor of the ``"scaled"`` relative uncertainties.
    smooth
        Replace each background template by a smooth one first (:func:`smooth_background`);
        for a background simulation that is small compared with the projected luminosity.

    Raises
    ------
    InputError
        A non-positive luminosity, a mass outside the grid, an unknown option, a bad
        template directory (one line naming the value or file).
    """
    return project_templates(
        read_templates(templates_dir),
        config,
        luminosities_fb=luminosities_fb,
        masses_gev=masses_gev,
        systematics=systematics,
        mc_stat=mc_stat,
        floor=floor,
        smooth=smooth,
    )


# --------------------------------------------------------------------------- output
def _fmt(v: float) -> str:
    return "n/a" if not math.isfinite(v) else f"{v:.3g}"


def _markdown(tables: Sequence[ProjectionTable]) -> str:
    lines = []
    for t in tables:
        lums = t.luminosities()
        extra = f", floor {t.scaled_floor:g}" if t.systematics == "scaled" else ""
        lines += [
            f"Expected 90% CL upper limits on sigma(e+e- -> mu+ mu- Z') x B(Z' -> invisible) [fb], "
            f"median [-1 sigma, +1 sigma]; templates at L0 = {t.luminosity0_fb:g} fb^-1, "
            f"systematics: {t.systematics}{extra}, MC statistics: {t.mc_stat}"
            + (", backgrounds smoothed." if t.smooth else "."),
            "",
            "| M_Z' [GeV] (grid) | "
            + " | ".join(f"{lum:g} fb^-1" for lum in lums)
            + f" | ratio {lums[-1]:g} / {lums[0]:g} | 1/sqrt(L) ratio |",
            "| --- " * (len(lums) + 3) + "|",
        ]
        for m in t.masses():
            rows = t.for_mass(m)
            cells = [
                f"{_fmt(r.median_fb)} [{_fmt(r.expected_fb[1])}, {_fmt(r.expected_fb[3])}]"
                for r in rows
            ]
            ratio = rows[-1].median_fb / rows[0].median_fb
            ref = math.sqrt(rows[0].luminosity_fb / rows[-1].luminosity_fb)
            lines.append(
                f"| {m:g} ({rows[0].mass_gev:.3f}) | "
                + " | ".join(cells)
                + f" | {ratio:.3g} | {ref:.3g} |"
            )
        failed = [r for r in t.rows if r.status != "ok"]
        for r in failed:
            lines.append(f"\nfailed: {r.name} at {r.luminosity_fb:g} fb^-1: {r.message}")
        lines.append("")
    return "\n".join(lines)


def _write_csv(path: Path, records: list[dict[str, Any]]) -> Path:
    keys: list[str] = []
    for r in records:
        keys.extend(k for k in r if k not in keys)
    with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(records)
    return path


def plot_projection(table: ProjectionTable, *, others: Sequence[ProjectionTable] = ()) -> Any:
    """Expected median limit versus luminosity (log-log), one colour per mass.

    The +-1 and +-2 sigma bands of ``table`` are shaded; a thin dashed line per mass is the
    pure-statistics ``1/sqrt(L)`` extrapolation from its first luminosity; vertical lines mark
    ``L0`` and Belle II's 50 ab^-1 goal. ``others`` (same masses, other systematics options)
    are drawn as median lines only, with other line styles. Returns the matplotlib ``Figure``
    of :func:`zprime.analyses.invisible_zprime.figures.projection_figure`.
    """
    return projection_figure(table, others=others, goal_fb=BELLE2_GOAL_FB)


def write_projection(
    table: ProjectionTable,
    out_dir: str | Path,
    *,
    others: Sequence[ProjectionTable] = (),
    stem: str = "projection",
) -> dict[str, Path]:
    """Write ``<stem>s.csv`` and ``<stem>s.md`` (``table`` and then ``others``) and the figure
    ``<stem>_limits.png/pdf`` (:func:`plot_projection`); all atomically.

    Returns the paths by key ``csv``, ``md``, ``png``, ``pdf``.
    """
    d = Path(out_dir)
    tables = [table, *others]
    records = [rec for t in tables for rec in t.records()]
    csv_path = _write_csv(d / f"{stem}s.csv", records)
    md_path = d / f"{stem}s.md"
    with atomic_path(md_path) as tmp:
        tmp.write_text(_markdown(tables))
    png, pdf = save(plot_projection(table, others=others), d / f"{stem}_limits")
    return {"csv": csv_path, "md": md_path, "png": png, "pdf": pdf}


def projections_from_config(
    templates_dir: str | Path, config: Config, out_dir: str | Path
) -> dict[str, Path]:
    """The projection the configuration asks for (``projections``: luminosities, masses,
    systematics, mc_stat, scaled_floor, smooth_background), written by
    :func:`write_projection`; ``{}`` when ``projections.luminosities_fb`` is empty."""
    pc = config.projections
    if not pc.luminosities_fb:
        return {}
    table = project_limits(
        templates_dir,
        config,
        luminosities_fb=pc.luminosities_fb,
        masses_gev=pc.masses_gev,
        systematics=pc.systematics,
        mc_stat=pc.mc_stat,
        floor=pc.scaled_floor,
        smooth=pc.smooth_background,
    )
    return write_projection(table, out_dir)
