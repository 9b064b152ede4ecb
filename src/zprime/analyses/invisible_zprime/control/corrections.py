"""Everything derived from the control samples, and the corrections file.

:func:`derive` makes every measurement (``measurements``, ``systematics``) and the systematics
table of the templates; :class:`ControlResult` holds them, writes ``corrections.json``
(:data:`FORMAT`, version :data:`FORMAT_VERSION`) and the comparison with the configured
fallbacks and the PRL; :class:`Corrections` (from :func:`read_corrections`) applies the trigger
and photon-veto corrections to the simulation.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from zprime import __version__
from zprime._util import chunk_rng, read_json_object, write_json_atomic
from zprime.analyses.invisible_zprime.binning import ResolutionModel, windows_from_config
from zprime.analyses.invisible_zprime.control.measurements import (
    PhotonVetoResult,
    TriggerResult,
    _poly,
    _poly_err,
    _veto_weights,
    measure_photon_veto,
    measure_trigger,
)
from zprime.analyses.invisible_zprime.control.samples import (
    _DEG,
    _SIGNAL_REGION,
    ChannelSample,
    ControlSample,
    _f64,
)
from zprime.analyses.invisible_zprime.control.systematics import (
    EfficiencyRange,
    ResolutionResult,
    ShapeRange,
    measure_background_shape,
    measure_resolution,
    measure_signal_efficiency,
)
from zprime.config import Config, ControlConfig, SystematicsValues
from zprime.errors import ConfigError, InputError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "ControlResult",
    "Corrections",
    "derive",
    "read_corrections",
]

FORMAT = "zprime-corrections"
FORMAT_VERSION = 1
"""Version of the ``corrections.json`` format."""


# ============================================================================ all together
@dataclass
class ControlResult:
    """Every measurement, the derived systematics, the fallbacks used and the inputs."""

    trigger: TriggerResult
    photon_veto: PhotonVetoResult
    resolution: ResolutionResult
    efficiency: list[EfficiencyRange]
    background_shape: list[ShapeRange]
    systematics: SystematicsValues
    fallbacks: list[dict[str, Any]]
    windows: list[dict[str, Any]] = field(default_factory=list)
    samples: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    def corrections(self) -> Corrections:
        """The corrections to apply to simulation (:class:`Corrections`)."""
        return Corrections.from_dict(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """The content of ``corrections.json``."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "zprime_version": __version__,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "inputs": self.inputs,
            "samples": self.samples,
            "trigger": self.trigger.to_dict(),
            "photon_veto": self.photon_veto.to_dict(),
            "resolution": self.resolution.to_dict(),
            "signal_efficiency": [e.to_dict() for e in self.efficiency],
            "background_shape": [s.to_dict() for s in self.background_shape],
            "systematics": self.systematics.model_dump(mode="json"),
            "fallbacks": self.fallbacks,
            "comparison": self.comparison_rows(),
        }

    def write(self, path: str | Path) -> Path:
        """Write ``corrections.json`` atomically."""
        return write_json_atomic(path, self.to_dict())

    def comparison_rows(self) -> list[dict[str, Any]]:
        """The derived systematics and corrections next to the configured fallbacks
        (``config``: ``templates.systematics.prl`` and the ``control`` fallbacks) and the PRL's
        values (one row per quantity)."""
        prl = SystematicsValues()  # the model's defaults are the PRL's values (cited there)
        fb = (
            SystematicsValues(**self.inputs["fallback_systematics"])
            if "fallback_systematics" in self.inputs
            else prl
        )
        cc = ControlConfig(**self.inputs["control"]) if "control" in self.inputs else None
        rows: list[dict[str, Any]] = []
        trig = self.trigger
        fin = np.isfinite(trig.eff_data) & trig.used
        rows.append(
            {
                "quantity": "two-track trigger efficiency (data)",
                "range": "M^2 bins used",
                "derived": (
                    f"{np.min(trig.eff_data[fin]):.3f} - {np.max(trig.eff_data[fin]):.3f}"
                    if fin.any()
                    else "n/a"
                ),
                "config": "{:g} - {:g}".format(*cc.trigger.prl_efficiency) if cc else "",
                "prl": "0.89 - 0.93",
                "source": "fallback" if trig.fallback else "measured",
            }
        )
        rows.append(
            {
                "quantity": "trigger correction data/simulation",
                "range": "c(M^2) = "
                + " + ".join(
                    f"{c:.4g} M^{2 * k}" if k else f"{c:.4g}"
                    for k, c in enumerate(trig.coefficients)
                ),
                "derived": f"{float(trig.correction(trig.fit_range[0])[0]):.3f} - "
                f"{float(trig.correction(trig.fit_range[1])[0]):.3f}",
                "config": (
                    "c = " + " + ".join(f"{c:g}" for c in cc.trigger.fallback_coefficients)
                    if cc
                    else ""
                ),
                "prl": "not quoted",
                "source": "fallback" if trig.fallback else "measured",
            }
        )
        pv = self.photon_veto
        rows.append(
            {
                "quantity": "photon-veto inefficiency, backward barrel (data / simulation)",
                "range": f"M^2 < {pv.m2_max:g}",
                "derived": f"{_fmt(pv.eff_data, pv.err_data)} / {_fmt(pv.eff_sim, pv.err_sim)}",
                "config": "",
                "prl": "larger in data",
                "source": "fallback" if pv.fallback else "measured",
            }
        )
        rows.append(
            {
                "quantity": f"extra photon loss per photon, backward barrel ({pv.trigger} trigger)",
                "range": f"M^2 < {pv.m2_max:g}",
                # two decimals: the stratified ee sample measures it to ~0.07%
                "derived": (
                    f"{100 * pv.extra_miss:.2f} +- {100 * pv.extra_miss_err:.2f}% "
                    f"({pv.n_data:.0f} / {pv.n_sim:.0f} effective events)"
                    if math.isfinite(pv.extra_miss_err) and pv.extra_miss_err > 0
                    else _pct(pv.extra_miss)
                ),
                "config": _pct(cc.photon_veto.fallback_extra_miss_probability) if cc else "",
                "prl": "not quoted",
                "source": "fallback" if pv.fallback else "measured",
            }
        )
        res = self.resolution
        rows.append(
            {
                "quantity": "resolution scale data/simulation",
                "range": "mu mu gamma",
                "derived": _fmt(res.scale, res.scale_err, 4),
                "config": f"{cc.resolution.fallback_scale:g}" if cc else "",
                "prl": "1.08",
                "source": "fallback" if res.fallback else "measured",
            }
        )
        rows.append(
            {
                "quantity": "signal shape",
                "range": "all",
                "derived": _pct(res.signal_shape, res.signal_shape_err),
                "config": _pct(fb.signal_shape),
                "prl": _pct(prl.signal_shape),
                "source": "fallback" if res.fallback else "measured",
            }
        )
        for i, e in enumerate(self.efficiency):
            rows.append(
                {
                    "quantity": f"signal efficiency ({e.sample})",
                    "range": f"[{e.m2_range[0]:g}, {e.m2_range[1]:g}]",
                    "derived": (
                        f"{_pct(e.systematic)} (measured {_pct(e.measured, e.systematic_err)})"
                        if e.fallback and math.isfinite(e.measured)
                        else _pct(e.systematic, e.systematic_err)
                    ),
                    "config": _pct(fb.signal_efficiency[i])
                    if i < len(fb.signal_efficiency)
                    else "",
                    "prl": _pct(prl.signal_efficiency[i]) if i < len(prl.signal_efficiency) else "",
                    "source": "fallback" if e.fallback else "measured",
                }
            )
        for i, s in enumerate(self.background_shape):
            raw = (
                f" (PRL definition {_pct(s.statistic)}, statistics alone {_pct(s.null_median)})"
                if math.isfinite(s.statistic)
                else ""
            )
            rows.append(
                {
                    "quantity": f"background shape ({'+'.join(s.samples)})",
                    "range": f"[{s.m2_range[0]:g}, {s.m2_range[1]:g}]",
                    "derived": _pct(s.systematic) + raw,
                    "config": _pct(fb.background_shape[i]) if i < len(fb.background_shape) else "",
                    "prl": _pct(prl.background_shape[i]) if i < len(prl.background_shape) else "",
                    "source": "fallback" if s.fallback else "measured",
                }
            )
        split = self.systematics.photon_veto_split_m2_gev2
        for j, label in enumerate((f"< {split:g}", f"> {split:g}")):
            rows.append(
                {
                    "quantity": "photon-veto background shape (ee)",
                    "range": label,
                    "derived": _pct(pv.shape[j]),
                    "config": _pct(fb.photon_veto_shape[j]),
                    "prl": _pct(prl.photon_veto_shape[j]),
                    "source": "fallback" if pv.shape_fallback[j] else "measured",
                }
            )
        return rows

    def comparison_markdown(self) -> str:
        """:meth:`comparison_rows` as a Markdown table."""
        lines = [
            "Derived corrections and systematic uncertainties next to the configured fallbacks "
            "and the PRL's (PRL 130, 231801 (2023))",
            "",
            "| quantity | M^2 range [GeV^2] | derived | fallback (config) | PRL | source |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for r in self.comparison_rows():
            lines.append(
                f"| {r['quantity']} | {r['range']} | {r['derived']} | {r['config']} | {r['prl']} "
                f"| {r['source']} |"
            )
        if self.fallbacks:
            lines += ["", "Fallbacks used:", ""]
            lines += [
                f"- {f['measurement']} (sample `{f['sample']}`): {f['reason']}; value {f['value']}"
                for f in self.fallbacks
            ]
        return "\n".join(lines) + "\n"


def _fmt(v: float, e: float | None = None, digits: int = 4) -> str:
    if not math.isfinite(v):
        return "n/a"
    if e is None or not math.isfinite(e):
        return f"{v:.{digits}g}"
    return f"{v:.{digits}g} +- {e:.2g}"


def _pct(v: float, e: float | None = None) -> str:
    if not math.isfinite(v):
        return "n/a"
    if e is None or not math.isfinite(e) or e == 0:
        return f"{100 * v:.1f}%"
    return f"{100 * v:.1f} +- {100 * e:.1f}%"


def _check_config(cfg: Config) -> None:
    prl = cfg.templates.systematics.prl
    n = len(prl.m2_ranges_gev2)
    if len(cfg.control.efficiency.samples) != n:
        raise ConfigError(
            f"config field 'control.efficiency.samples': needs one sample per M^2 range of "
            f"templates.systematics.prl ({n}), got {len(cfg.control.efficiency.samples)}"
        )


def derive(
    samples: Mapping[str, ControlSample],
    config: Config,
    *,
    mumu_simulation: ChannelSample | None = None,
    resolution: Any = None,
    rng: np.random.Generator | None = None,
) -> ControlResult:
    """Every measurement of the control samples and the systematics derived from them.

    Parameters
    ----------
    samples
        Channel name (``emu``, ``ee``, ``mumugamma``) -> data and simulation. A missing channel
        makes its measurements fall back (warning, recorded).
    config
        The configuration (``control``, ``templates.systematics.prl`` for the ranges and the
        fallbacks, ``selection.punzinet_min``, ``binning`` for the search windows).
    mumu_simulation
        The simulated signal-region sample of ``photon_veto_samples`` with ``recoverable``
        flags, for the photon-veto shape uncertainty.
    resolution
        :class:`zprime.analyses.invisible_zprime.binning.ResolutionModel` of the search windows
        (default: the PRL's).
    rng
        Random numbers for the statistics-only toys (default: from ``seed`` and
        ``control.seed_offset``).
    """
    _check_config(config)
    cc = config.control
    prl = config.templates.systematics.prl
    if rng is None:
        rng = chunk_rng(config.seed, cc.seed_offset, 1)
    fallbacks: list[dict[str, Any]] = []
    trig = measure_trigger(samples.get("emu"), cc, fallbacks)
    veto = measure_photon_veto(samples.get("ee"), config, fallbacks, mumu_simulation)
    res = measure_resolution(samples.get("mumugamma"), config, fallbacks)
    corrected = dict(samples)
    if cc.correct_simulation and not trig.fallback:
        corrected = {
            k: ControlSample(
                k, v.data, v.simulation.scaled(trig.correction(v.simulation.m_recoil2))
            )
            for k, v in samples.items()
        }
    eff = measure_signal_efficiency(corrected, config, fallbacks)
    model = resolution if resolution is not None else ResolutionModel.prl()
    _, _, windows = windows_from_config(config.binning, model)
    shape, rows = measure_background_shape(corrected, config, fallbacks, windows, rng)
    cap = cc.background_shape.max_uncertainty

    def capped(v: float) -> float:
        return float(min(max(v, 0.0), cap))

    systematics = SystematicsValues(
        m2_ranges_gev2=list(prl.m2_ranges_gev2),
        signal_efficiency=[capped(e.systematic) for e in eff],
        signal_shape=capped(res.signal_shape),
        background_shape=[capped(s.systematic) for s in shape],
        photon_veto_split_m2_gev2=prl.photon_veto_split_m2_gev2,
        photon_veto_shape=(capped(veto.shape[0]), capped(veto.shape[1])),
        photon_veto_samples=list(prl.photon_veto_samples),
        luminosity=prl.luminosity,
    )
    summary = {}
    for name, cs in samples.items():
        summary[name] = {
            kind: {
                "events": len(smp),
                "yield_selected": smp.total(smp.selected)[0],
                "yield_selected_err": math.sqrt(smp.total(smp.selected)[1]),
                "sources": list(smp.sources),
            }
            for kind, smp in (("data", cs.data), ("simulation", cs.simulation))
        }
    return ControlResult(
        trigger=trig,
        photon_veto=veto,
        resolution=res,
        efficiency=eff,
        background_shape=shape,
        systematics=systematics,
        fallbacks=fallbacks,
        windows=rows,
        samples=summary,
        inputs={
            "luminosity_fb": config.luminosity_fb,
            "control": cc.model_dump(mode="json"),
            "selection": config.selection.model_dump(mode="json"),
            "fallback_systematics": prl.model_dump(mode="json"),
            "resolution_model": getattr(model, "source", "prl"),
            "windows": len(windows),
        },
    )


# ============================================================================ corrections
@dataclass(frozen=True)
class Corrections:
    """Corrections measured in the control samples, to apply to the simulation.

    - trigger: every simulated event (signal and background) gets ``trigger_weight(M^2)``;
    - photon veto (the mu mu background, ``photon_veto_samples``): an event that passes the veto
      keeps weight 1 (``pass_scale`` when data miss fewer photons than the simulation and its
      recoil is in the backward barrel at M^2 < ``m2_max``); an event that fails the veto only
      because of photons in the backward barrel (:func:`photon_veto_recoverable`) enters with
      weight ``extra_miss`` (the probability that data miss such a photon); other failing
      events have weight 0.
    """

    trigger_coefficients: tuple[float, ...]
    trigger_covariance: tuple[tuple[float, ...], ...]
    trigger_range: tuple[float, float]
    extra_miss: float
    extra_miss_err: float
    eff_sim: float
    theta_range: tuple[float, float]
    m2_max: float
    photon_veto_samples: tuple[str, ...]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "corrections") -> Corrections:
        """From the content of ``corrections.json``."""
        try:
            t = data["trigger"]
            p = data["photon_veto"]
            return cls(
                tuple(float(c) for c in t["coefficients"]),
                tuple(tuple(float(v) for v in row) for row in t["covariance"]),
                (float(t["fit_range_gev2"][0]), float(t["fit_range_gev2"][1])),
                float(p["extra_miss_probability"] or 0.0),
                float(p["extra_miss_probability_err"] or 0.0),
                float(p["inefficiency_simulation"] or 0.0),
                (p["theta_recoil_deg"][0] * _DEG, p["theta_recoil_deg"][1] * _DEG),
                float(p["m2_max_gev2"]),
                tuple(data["systematics"]["photon_veto_samples"]),
            )
        except (KeyError, TypeError, IndexError, ValueError) as err:
            raise InputError(f"{where}: not a corrections file ({err!r})") from None

    def trigger_weight(self, m2: ArrayLike) -> NDArray[np.float64]:
        """Trigger correction at ``m2`` (clipped to the fitted M^2 range)."""
        return _poly(self.trigger_coefficients, np.clip(_f64(m2), *self.trigger_range))

    def trigger_weight_uncertainty(self, m2: ArrayLike) -> NDArray[np.float64]:
        """Uncertainty of :meth:`trigger_weight`."""
        cov = np.asarray(self.trigger_covariance, dtype=float)
        return _poly_err(cov, np.clip(_f64(m2), *self.trigger_range))

    def photon_veto_weight(
        self,
        passed: ArrayLike,
        recoverable: ArrayLike,
        theta_recoil: ArrayLike,
        m2: ArrayLike,
    ) -> NDArray[np.float64]:
        """Per-event weight of the mu mu background for the photon-veto correction.

        ``passed``: the event passes the photon veto; ``recoverable``: it fails it only because
        of photons in the backward barrel; ``theta_recoil`` (rad) and ``m2`` (GeV^2).
        """
        smp = ChannelSample.from_columns(
            _SIGNAL_REGION,
            {
                "m_recoil2": m2,
                "theta_recoil": theta_recoil,
                "weight": np.ones(np.size(m2)),
                "photon_veto": passed,
                "recoverable": recoverable,
            },
        )
        return _veto_weights(smp, self.extra_miss, self.eff_sim, self.theta_range, self.m2_max)


def read_corrections(path: str | Path) -> Corrections:
    """Read the corrections of a ``corrections.json`` (written by :func:`run_control`).

    Raises
    ------
    InputError
        Missing or unreadable file, another format or version, missing entries.
    """
    data = read_json_object(path, "corrections")
    if data.get("format") != FORMAT:
        raise InputError(f"{path}: not a zprime corrections file")
    if data.get("format_version") != FORMAT_VERSION:
        raise InputError(
            f"{path}: corrections version {data.get('format_version')} "
            f"(this zprime reads {FORMAT_VERSION})"
        )
    return Corrections.from_dict(data, where=str(path))
