"""pyhf JSON workspaces for one search window, built from template arrays.

A window's 2D template (M_recoil^2 x theta_recoil, ANALYSIS.md "Fit and limits") is flattened
into one pyhf channel. The statistical model is the PRL's:

- POI ``xsec_fb``: a ``normfactor`` on the signal, whose template is the expected yield for a
  signal cross section of 1 fb, so the POI is the cross section in fb;
- background normalisation free (one ``normfactor`` shared by all backgrounds by default);
- uncorrelated per-bin Gaussian shape uncertainties on the signal and background templates, as
  one ``histosys`` per bin per sample (hi/lo = the nominal template with that single bin shifted
  by +-rel * nominal). pyhf has no other way to write an uncorrelated *Gaussian* per-bin
  uncertainty per sample: ``shapesys`` is Poisson-constrained, and ``staterror`` modifiers that
  share a name are merged across samples into one Barlow-Beeston-lite factor per bin (and
  ``staterror`` with distinct names per sample would still be bin-wise factors, not shape
  shifts); a per-bin ``histosys`` has a unit Gaussian constraint and, with symmetric
  variations, a delta exactly linear in its parameter under pyhf's default code4p interpolation;
- signal efficiency as a ``normsys``, luminosity as a ``lumi`` modifier on the signal;
- Monte Carlo statistical uncertainties as ``staterror`` (``mcstat``), Barlow-Beeston lite.

pyhf's workspace schema (``schemas/1.0.0/defs.json``) sets ``additionalProperties: false`` on the
workspace, channel, sample and measurement objects, so our metadata (bin map, bin edges, mass
hypothesis) cannot live inside the workspace: :func:`write_workspace` writes it to a sidecar
``<name>.meta.json`` next to the workspace file, which ``pyhf`` never reads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from zprime._util import read_json_object, write_json_atomic
from zprime.errors import InputError

__all__ = [
    "POI_NAME",
    "build_workspace",
    "metadata_path",
    "read_workspace",
    "write_workspace",
]

POI_NAME = "xsec_fb"
_Rel = float | ArrayLike


def _flat(name: str, wsname: str, arr: ArrayLike, nbins: int | None) -> NDArray[np.float64]:
    a = np.asarray(arr, dtype=float).ravel()
    if nbins is not None and a.size != nbins:
        raise InputError(f"workspace {wsname}: {name} has {a.size} bins, expected {nbins}")
    bad = ~np.isfinite(a)
    if bad.any():
        raise InputError(f"workspace {wsname}: {name} is NaN/inf in bin {int(np.argmax(bad))}")
    if np.any(a < 0):
        raise InputError(
            f"workspace {wsname}: {name} is negative ({a.min():g}) in bin {int(np.argmin(a))}"
        )
    return a


def _rel(name: str, wsname: str, rel: _Rel | None, nbins: int) -> NDArray[np.float64]:
    if rel is None:
        return np.zeros(nbins)
    r = np.broadcast_to(np.asarray(rel, dtype=float), (nbins,)).copy()
    if not np.all(np.isfinite(r)) or np.any(r < 0):
        raise InputError(f"workspace {wsname}: relative uncertainty {name} must be finite and >= 0")
    return r


def _per_bin_histosys(prefix: str, nominal: NDArray[np.float64], rel: NDArray[np.float64]) -> list:
    mods = []
    for b in np.flatnonzero((nominal > 0) & (rel > 0)):
        hi = nominal.copy()
        lo = nominal.copy()
        hi[b] = nominal[b] * (1.0 + rel[b])
        lo[b] = nominal[b] * (1.0 - rel[b])
        mods.append(
            {
                "name": f"{prefix}_bin{int(b)}",
                "type": "histosys",
                "data": {"hi_data": hi.tolist(), "lo_data": lo.tolist()},
            }
        )
    return mods


def build_workspace(
    signal: ArrayLike,
    backgrounds: Mapping[str, ArrayLike],
    observed: ArrayLike,
    *,
    name: str = "window",
    signal_shape_unc: _Rel | None = None,
    background_shape_unc: _Rel | Mapping[str, _Rel] | None = None,
    signal_efficiency_unc: float = 0.0,
    lumi_unc: float = 0.0,
    signal_mc_unc: ArrayLike | None = None,
    background_mc_unc: Mapping[str, ArrayLike] | None = None,
    background_norm: str = "shared",
    poi_bounds: tuple[float, float] | None = None,
    background_floor: float | None = None,
) -> dict[str, Any]:
    """The pyhf workspace (schema 1.0.0) of one search window.

    Parameters
    ----------
    signal
        Expected signal yield per flattened bin for a cross section of 1 fb (efficiency times
        luminosity); any shape, flattened row-major.
    backgrounds
        Expected yield per bin of every background sample, by name.
    observed
        Observed counts per bin.
    name
        Channel name and label of errors and results (e.g. ``"m2.352"``).
    signal_shape_unc, background_shape_unc
        Relative per-bin Gaussian shape uncertainties (scalar or per bin); for backgrounds a
        scalar/array applies to each sample, a mapping gives one per sample name. Each non-zero
        entry becomes one ``histosys`` named ``shape_<sample>_bin<i>``.
    signal_efficiency_unc
        Relative signal-efficiency uncertainty: ``normsys`` ``sig_eff`` with hi/lo = 1 +- unc.
    lumi_unc
        Relative luminosity uncertainty: ``lumi`` modifier on the signal (auxdata 1, sigma unc).
    signal_mc_unc, background_mc_unc
        Absolute MC statistical uncertainties per bin (sqrt of the sum of squared weights),
        written as ``staterror`` ``mcstat`` (merged per bin across samples, as pyhf does).
    background_norm
        ``"shared"``: one free ``normfactor`` ``bkg_norm`` on all backgrounds; ``"per_sample"``:
        one ``norm_<sample>`` each; ``"fixed"``: none.
    poi_bounds
        Bounds of the POI in fb (default: 0 to ten times a generous upper-limit estimate, so that
        pyhf's root finder never leaves the bounds).
    background_floor
        If given, bins whose total expected background is below this value are raised to it (on
        the first background sample); if ``None`` such bins are an error.

    Raises
    ------
    InputError
        Negative, NaN or mismatched inputs, a window without expected background, or without
        signal, naming the workspace and the offending sample or bin.
    """
    if not backgrounds:
        raise InputError(f"workspace {name}: no background sample given")
    sig = np.asarray(signal, dtype=float).ravel()
    nb = sig.size
    sig = _flat("signal", name, sig, nb)
    bkgs = {k: _flat(f"background {k!r}", name, v, nb) for k, v in backgrounds.items()}
    obs = _flat("observed data", name, observed, nb)
    if "signal" in bkgs:
        raise InputError(f"workspace {name}: a background may not be called 'signal'")
    if sig.sum() <= 0:
        raise InputError(f"workspace {name}: the signal template is zero in every bin")
    btot = np.sum(list(bkgs.values()), axis=0)
    if btot.sum() <= 0:
        raise InputError(f"workspace {name}: zero expected background in every bin")
    low = btot <= (0.0 if background_floor is None else background_floor)
    if low.any():
        if background_floor is None or background_floor <= 0:
            raise InputError(
                f"workspace {name}: zero expected background in bins "
                f"{np.flatnonzero(low).tolist()} (merge them or pass background_floor)"
            )
        first = next(iter(bkgs))
        bkgs[first] = bkgs[first] + np.where(low, background_floor - btot, 0.0)
        btot = np.sum(list(bkgs.values()), axis=0)

    if background_norm not in ("shared", "per_sample", "fixed"):
        raise InputError(
            f"workspace {name}: background_norm {background_norm!r} is not one of "
            "shared, per_sample, fixed"
        )
    for label, val in (("signal_efficiency_unc", signal_efficiency_unc), ("lumi_unc", lumi_unc)):
        if not (np.isfinite(val) and 0 <= val < 1):
            raise InputError(f"workspace {name}: {label} must lie in [0, 1), got {val}")

    srel = _rel("signal_shape_unc", name, signal_shape_unc, nb)
    if isinstance(background_shape_unc, Mapping):
        brel = {
            k: _rel(f"background_shape_unc[{k}]", name, background_shape_unc.get(k), nb)
            for k in bkgs
        }
        unknown = set(background_shape_unc) - set(bkgs)
        if unknown:
            raise InputError(
                f"workspace {name}: shape uncertainty for unknown sample {sorted(unknown)[0]!r}"
            )
    else:
        brel = {k: _rel("background_shape_unc", name, background_shape_unc, nb) for k in bkgs}

    if poi_bounds is None:
        scale = (
            obs.sum()
            + 5.0
            + 3.0 * np.sqrt(btot.sum())
            + float(np.sum(np.max([brel[k] for k in bkgs], axis=0) * btot))
        )
        upper = float(10.0 * scale / sig.sum())
        poi_bounds = (0.0, max(upper, 1.0))
    poi_init = min(1.0, 0.5 * poi_bounds[1])

    sig_mods: list[dict[str, Any]] = [{"name": POI_NAME, "type": "normfactor", "data": None}]
    if signal_efficiency_unc > 0:
        sig_mods.append(
            {
                "name": "sig_eff",
                "type": "normsys",
                "data": {"hi": 1.0 + signal_efficiency_unc, "lo": 1.0 - signal_efficiency_unc},
            }
        )
    if lumi_unc > 0:
        sig_mods.append({"name": "lumi", "type": "lumi", "data": None})
    if signal_mc_unc is not None:
        unc = _flat("signal_mc_unc", name, signal_mc_unc, nb)
        sig_mods.append({"name": "mcstat", "type": "staterror", "data": unc.tolist()})
    sig_mods += _per_bin_histosys("shape_signal", sig, srel)
    samples = [{"name": "signal", "data": sig.tolist(), "modifiers": sig_mods}]
    for k, nom in bkgs.items():
        mods: list[dict[str, Any]] = []
        if background_norm == "shared":
            mods.append({"name": "bkg_norm", "type": "normfactor", "data": None})
        elif background_norm == "per_sample":
            mods.append({"name": f"norm_{k}", "type": "normfactor", "data": None})
        if background_mc_unc is not None and k in background_mc_unc:
            unc = _flat(f"background_mc_unc[{k}]", name, background_mc_unc[k], nb)
            mods.append({"name": "mcstat", "type": "staterror", "data": unc.tolist()})
        mods += _per_bin_histosys(f"shape_{k}", nom, brel[k])
        samples.append({"name": k, "data": nom.tolist(), "modifiers": mods})

    params: list[dict[str, Any]] = [
        {
            "name": POI_NAME,
            "bounds": [[float(poi_bounds[0]), float(poi_bounds[1])]],
            "inits": [poi_init],
        }
    ]
    if lumi_unc > 0:
        params.append(
            {
                "name": "lumi",
                "auxdata": [1.0],
                "sigmas": [float(lumi_unc)],
                "bounds": [[max(0.0, 1.0 - 10 * lumi_unc), 1.0 + 10 * lumi_unc]],
                "inits": [1.0],
            }
        )
    return {
        "version": "1.0.0",
        "channels": [{"name": name, "samples": samples}],
        "observations": [{"name": name, "data": obs.tolist()}],
        "measurements": [
            {"name": f"{name}_xsec", "config": {"poi": POI_NAME, "parameters": params}}
        ],
    }


def metadata_path(path: str | Path) -> Path:
    """The sidecar file holding our metadata for workspace ``path``: ``<stem>.meta.json``."""
    p = Path(path)
    return p.with_name(p.name.removesuffix(".json") + ".meta.json")


def write_workspace(
    path: str | Path, spec: Mapping[str, Any], metadata: Mapping[str, Any] | None = None
) -> Path:
    """Write ``spec`` to ``path`` (atomically) and ``metadata`` (bin map, edges, mass
    hypothesis, ...) to the sidecar :func:`metadata_path`; return ``path``."""
    write_json_atomic(path, dict(spec))
    if metadata is not None:
        write_json_atomic(metadata_path(path), _jsonable(metadata))
    return Path(path)


def read_workspace(path: str | Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Read a workspace and its sidecar metadata (``None`` if there is none).

    Raises
    ------
    InputError
        If the file is missing or is not a JSON object with ``channels``.
    """
    p = Path(path)
    spec = read_json_object(p, "workspace")
    if "channels" not in spec:
        raise InputError(f"{p}: not a pyhf workspace (no 'channels')")
    meta_p = metadata_path(p)
    meta = json.loads(meta_p.read_text()) if meta_p.exists() else None
    return spec, meta


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
