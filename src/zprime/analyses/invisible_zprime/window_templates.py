"""The templates of one search window and of a whole scan, and their files.

This module owns :class:`WindowTemplates` (a window's signal, background and observed 2D
histograms with the :class:`~zprime.analyses.invisible_zprime.systematics_table.SystematicsTable`
attached; :meth:`WindowTemplates.workspace_inputs` gives the keyword arguments of
:func:`zprime.stats.workspace.build_workspace`, :meth:`WindowTemplates.metadata` the sidecar
metadata), :class:`TemplateSet` (all windows of a scan and the failed ones) and the template
files: :func:`write_templates`, :func:`read_window`, :func:`read_templates`.
:mod:`zprime.analyses.invisible_zprime.templates` re-exports them.

Flattening: a window's 2D template is one pyhf channel; bins are flattened **row-major** with
M_recoil^2 as the slow index, ``flat = i_m2 * n_theta + i_theta`` (``values().ravel()``,
:data:`FLATTEN_ORDER`), and :meth:`WindowTemplates.bin_map` lists ``(i_m2, i_theta)`` per flat
bin.

Files: one JSON per hypothesis, ``<dir>/<name>.json`` (name
:func:`zprime.analyses.invisible_zprime.binning.hypothesis_name`, e.g. ``M2.3520.json``), plus
``<dir>/index.json`` with the list of windows, the failed ones and their reasons, the
resolution model and the grid; all written atomically (format :data:`FORMAT_VERSION`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hist
import numpy as np
from numpy.typing import NDArray

from zprime._util import read_json_object, write_json_atomic
from zprime.analyses.invisible_zprime.binning import ResolutionModel, Window
from zprime.analyses.invisible_zprime.samples import _from_arrays
from zprime.analyses.invisible_zprime.systematics_table import SystematicsTable
from zprime.config import SystematicsValues
from zprime.errors import InputError

__all__ = [
    "FLATTEN_ORDER",
    "FORMAT_VERSION",
    "TemplateSet",
    "WindowTemplates",
    "read_templates",
    "read_window",
    "write_templates",
]

FORMAT_VERSION = 1
"""Version of the template JSON format."""

FLATTEN_ORDER = "row-major (m_recoil2, theta_recoil_cm): flat = i_m2 * n_theta + i_theta"


# --------------------------------------------------------------------------- window templates
@dataclass
class WindowTemplates:
    """The templates of one search window and the uncertainties attached to them.

    The 2D histograms share the window's bins; :meth:`workspace_inputs` flattens them
    (row-major, :data:`FLATTEN_ORDER`) into the keyword arguments of
    :func:`zprime.stats.workspace.build_workspace`, and :meth:`metadata` gives the bin map,
    edges and hypothesis for the workspace's sidecar file.
    """

    window: Window
    luminosity_fb: float
    signal: hist.Hist
    """Expected events per fb of signal cross section (efficiency x luminosity per bin)."""
    backgrounds: dict[str, hist.Hist]
    """Expected events per background sample."""
    observed: hist.Hist | None
    """Observed (pseudo-)data counts; ``None``: none given (the expected background is used)."""
    signal_efficiency: float
    """Selection efficiency at the hypothesis (all M^2, not only the window)."""
    systematics: SystematicsTable
    extrapolated: bool = False
    """The hypothesis lies outside the simulated signal masses."""
    notes: list[str] = field(default_factory=list)

    # -- geometry ----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """Hypothesis name, e.g. ``M2.3520``."""
        return self.window.name

    @property
    def mass_gev(self) -> float:
        """Hypothesis mass, GeV."""
        return self.window.mass_gev

    @property
    def shape(self) -> tuple[int, int]:
        """(M^2 bins, theta bins)."""
        return self.window.shape

    @property
    def n_bins(self) -> int:
        """Flattened bins."""
        return self.window.n_bins

    def bin_map(self) -> NDArray[np.int64]:
        """``(i_m2, i_theta)`` of every flattened bin (row-major: i_m2 slow)."""
        a, b = self.shape
        return np.stack(np.unravel_index(np.arange(a * b), (a, b)), axis=1).astype(np.int64)

    def m2_centres(self) -> NDArray[np.float64]:
        """M^2 bin centre of every flattened bin, GeV^2."""
        e = self.window.m2_edges
        return np.repeat(0.5 * (e[1:] + e[:-1]), self.shape[1])

    # -- uncertainties -----------------------------------------------------------------------
    @property
    def signal_efficiency_unc(self) -> float:
        """Relative signal-efficiency uncertainty (by the hypothesis M^2)."""
        return self.systematics.signal_efficiency_at(self.window.m2_gev2)

    def signal_shape_unc(self) -> NDArray[np.float64]:
        """Relative per-bin signal shape uncertainty (flat)."""
        return np.full(self.n_bins, self.systematics.signal_shape)

    def background_shape_unc(self) -> NDArray[np.float64]:
        """Relative per-bin shape uncertainty of the total background (flat, by bin M^2)."""
        return self.systematics.background_shape_at(self.m2_centres())

    def photon_veto_unc(self) -> NDArray[np.float64]:
        """Relative per-bin photon-veto uncertainty of the mu mu component (flat, by bin M^2)."""
        return self.systematics.photon_veto_at(self.m2_centres())

    def total_background(self) -> NDArray[np.float64]:
        """Expected background per flattened bin."""
        return np.sum([h.values().ravel() for h in self.backgrounds.values()], axis=0)

    # -- export ------------------------------------------------------------------------------
    def workspace_inputs(self, merge_backgrounds: bool = True) -> dict[str, Any]:
        """Keyword arguments of :func:`zprime.stats.workspace.build_workspace`.

        ``merge_backgrounds``: one sample ``background`` (the sum; the PRL fits one background
        template with a free normalisation) whose per-bin relative shape uncertainty is
        ``sqrt((r_bkg B)^2 + sum_k (r_pv b_k)^2) / B`` over the photon-veto samples k (the two
        are independent per-bin Gaussian shifts, so this is exact); otherwise one sample each,
        with ``sqrt(r_bkg^2 + r_pv^2)`` on the photon-veto samples and ``r_bkg`` on the rest.
        """
        syst = self.systematics
        sig = self.signal.values().ravel()
        flat = {k: h.values().ravel() for k, h in self.backgrounds.items()}
        var = {k: h.variances().ravel() for k, h in self.backgrounds.items()}
        rb = self.background_shape_unc()
        rpv = self.photon_veto_unc()
        pv = [k for k in flat if k in syst.photon_veto_samples]
        if merge_backgrounds:
            total = np.sum(list(flat.values()), axis=0)
            absq = (rb * total) ** 2 + sum(((rpv * flat[k]) ** 2 for k in pv), np.zeros_like(total))
            rel = np.where(total > 0, np.sqrt(absq) / np.where(total > 0, total, 1.0), rb)
            backgrounds = {"background": total}
            shape_unc: dict[str, NDArray[np.float64]] = {"background": rel}
            mc = {"background": np.sqrt(np.sum(list(var.values()), axis=0))}
        else:
            backgrounds = flat
            shape_unc = {k: np.sqrt(rb**2 + (rpv**2 if k in pv else 0.0)) for k in flat}
            mc = {k: np.sqrt(v) for k, v in var.items()}
        observed = (
            self.observed.values().ravel() if self.observed is not None else self.total_background()
        )
        out: dict[str, Any] = {
            "signal": sig,
            "backgrounds": backgrounds,
            "observed": observed,
            "name": self.name,
            "signal_shape_unc": self.signal_shape_unc(),
            "background_shape_unc": shape_unc,
            "signal_efficiency_unc": self.signal_efficiency_unc,
            "lumi_unc": syst.luminosity,
        }
        if syst.mc_stat:
            out["signal_mc_unc"] = np.sqrt(self.signal.variances().ravel())
            out["background_mc_unc"] = mc
        return out

    def metadata(self) -> dict[str, Any]:
        """Bin map, edges, hypothesis and bookkeeping (the workspace's sidecar metadata)."""
        w = self.window
        return {
            "name": self.name,
            "index": w.index,
            "mass_gev": w.mass_gev,
            "m2_gev2": w.m2_gev2,
            "width_gev": w.width_gev,
            "luminosity_fb": self.luminosity_fb,
            "m2_edges_gev2": w.m2_edges.tolist(),
            "theta_edges_rad": w.theta_edges.tolist(),
            "shape": list(self.shape),
            "flatten": FLATTEN_ORDER,
            "bin_map": self.bin_map().tolist(),
            "window_shift_units": w.shift,
            "signal_efficiency": self.signal_efficiency,
            "extrapolated": self.extrapolated,
            "observed_is_asimov": self.observed is None,
            "systematics_source": self.systematics.source,
            "notes": list(self.notes),
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON of the window (inverse: :meth:`from_dict`)."""

        def hd(h: hist.Hist) -> dict[str, Any]:
            return {"values": h.values().tolist(), "variances": h.variances().tolist()}

        return {
            "format": FORMAT_VERSION,
            **self.metadata(),
            "signal": hd(self.signal),
            "backgrounds": {k: hd(h) for k, h in self.backgrounds.items()},
            "observed": None if self.observed is None else hd(self.observed),
            "systematics": self.systematics.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "templates") -> WindowTemplates:
        """Rebuild a window from :meth:`to_dict` output.

        Raises
        ------
        InputError
            Unknown format or missing fields, naming ``where``.
        """
        if data.get("format") != FORMAT_VERSION:
            raise InputError(
                f"{where}: template format {data.get('format')!r} is not {FORMAT_VERSION}"
            )
        try:
            window = Window(
                index=int(data["index"]),
                mass_gev=float(data["mass_gev"]),
                m2_edges=np.asarray(data["m2_edges_gev2"], dtype=float),
                theta_edges=np.asarray(data["theta_edges_rad"], dtype=float),
                width_gev=None if data.get("width_gev") is None else float(data["width_gev"]),
                shift=float(data.get("window_shift_units", 0.0)),
            )

            def hh(d: Mapping[str, Any]) -> hist.Hist:
                return _from_arrays(window, d["values"], d["variances"])

            s = data["systematics"]
            table = SystematicsTable.from_values(
                SystematicsValues.model_validate(
                    {k: v for k, v in s.items() if k not in ("source", "mc_stat")}
                ),
                mc_stat=bool(s.get("mc_stat", True)),
                source=str(s.get("source", "")),
            )
            return cls(
                window=window,
                luminosity_fb=float(data["luminosity_fb"]),
                signal=hh(data["signal"]),
                backgrounds={k: hh(v) for k, v in data["backgrounds"].items()},
                observed=None if data.get("observed") is None else hh(data["observed"]),
                signal_efficiency=float(data["signal_efficiency"]),
                systematics=table,
                extrapolated=bool(data.get("extrapolated", False)),
                notes=list(data.get("notes", [])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{where}: malformed template file ({exc})") from None


# --------------------------------------------------------------------------- all windows
@dataclass
class TemplateSet:
    """The templates of all windows of a scan, and the windows that failed."""

    windows: list[WindowTemplates]
    failed: dict[str, str] = field(default_factory=dict)
    """Hypothesis name -> reason (e.g. no expected background); never silently dropped."""
    failed_mass: dict[str, float] = field(default_factory=dict)
    resolution: ResolutionModel | None = None
    info: dict[str, Any] = field(default_factory=dict)
    """Grid summary, settings and provenance."""

    def __len__(self) -> int:
        return len(self.windows)

    def by_name(self) -> dict[str, WindowTemplates]:
        """The windows by hypothesis name."""
        return {w.name: w for w in self.windows}


# --------------------------------------------------------------------------- files
def write_templates(
    directory: str | Path, tset: TemplateSet, *, provenance: Mapping[str, Any] | None = None
) -> Path:
    """Write ``<directory>/<name>.json`` per window and ``<directory>/index.json``; returns the
    index path. Every file is written atomically."""
    d = Path(directory)
    entries = []
    for w in tset.windows:
        write_json_atomic(d / f"{w.name}.json", w.to_dict())
        entries.append(
            {"name": w.name, "mass_gev": w.mass_gev, "file": f"{w.name}.json", "status": "ok"}
        )
    for name, msg in tset.failed.items():
        entries.append(
            {
                "name": name,
                "mass_gev": tset.failed_mass.get(name),
                "file": None,
                "status": "failed",
                "reason": msg,
            }
        )
    entries.sort(key=lambda e: (e["mass_gev"] is None, e["mass_gev"] or 0.0))
    index = {
        "format": FORMAT_VERSION,
        "flatten": FLATTEN_ORDER,
        "n_windows": len(tset.windows),
        "n_failed": len(tset.failed),
        "windows": entries,
        "resolution": None if tset.resolution is None else tset.resolution.to_dict(),
        "info": dict(tset.info),
        "provenance": dict(provenance) if provenance is not None else None,
    }
    return write_json_atomic(d / "index.json", index)


def read_window(path: str | Path) -> WindowTemplates:
    """Read one window file.

    Raises
    ------
    InputError
        Missing, unreadable or malformed file.
    """
    data = read_json_object(path, "template")
    return WindowTemplates.from_dict(data, where=str(path))


def read_templates(directory: str | Path) -> TemplateSet:
    """Read a directory written by :func:`write_templates` (windows, failures, resolution)."""
    d = Path(directory)
    try:
        index = json.loads((d / "index.json").read_text())
    except FileNotFoundError:
        raise InputError(f"{d}: no index.json (run the template stage)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{d / 'index.json'}: not readable ({exc})") from None
    tset = TemplateSet(windows=[], info=index.get("info", {}))
    if index.get("resolution"):
        tset.resolution = ResolutionModel.from_dict(
            index["resolution"], where=str(d / "index.json")
        )
    for e in index.get("windows", []):
        if e.get("status") == "ok":
            tset.windows.append(read_window(d / e["file"]))
        else:
            tset.failed[e["name"]] = e.get("reason", "failed")
            if e.get("mass_gev") is not None:
                tset.failed_mass[e["name"]] = float(e["mass_gev"])
    return tset
