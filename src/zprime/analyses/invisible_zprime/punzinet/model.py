"""The trained Punzi-net: applying it, its figure of merit, reading training files, saving and
loading.

Owns :class:`TrainedPunziNet` (network, features, configuration, training record, versions),
:func:`predict` and :func:`apply` (the network output per event), :func:`punzi_fom` (the
hard-cut figure of merit of a network or of an output column on given events),
:func:`read_training_files` (selected signal and background Parquet files for training) and
the network file: :func:`save` and :func:`load`, with its format name and version.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import torch

from zprime._util import atomic_path
from zprime.analyses.invisible_zprime.punzinet.fom import (
    SCAN_CUTS,
    TEST_NOTE,
    FomRow,
    FomTable,
    _fom_rows,
)
from zprime.analyses.invisible_zprime.punzinet.inputs import (
    FEATURES,
    MASS2_COLUMN,
    OUTPUT_COLUMN,
    PRL_OUTPUT_CUT,
    WEIGHT_COLUMN,
    Resolution,
    SignalSample,
    _as_signal_samples,
    _column,
    _extract,
    _resolution_callable,
    default_resolution,
)
from zprime.analyses.invisible_zprime.punzinet.loss import _window_bounds
from zprime.analyses.invisible_zprime.punzinet.network import (
    PunziEnsemble,
    PunziNetwork,
    _outputs,
)
from zprime.config import PunziNetConfig
from zprime.errors import InputError
from zprime.io.events import read_events, read_metadata

FILE_FORMAT = "zprime.analyses.invisible_zprime.punzinet"
FILE_VERSION = 1


@dataclass
class TrainedPunziNet:
    """A trained network with everything needed to apply and document it.

    Attributes
    ----------
    network
        The torch module (input standardisation included).
    features
        Input column names, in order.
    config
        The training configuration.
    record
        Training record: losses per epoch of both phases, best epochs, timings, sample sizes,
        windows, and the validation figure of merit with and without the network cut.
    versions
        Package versions at training time.
    """

    network: PunziNetwork | PunziEnsemble
    features: tuple[str, ...]
    config: PunziNetConfig
    record: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    def predict(self, events: Any) -> np.ndarray:
        """Network output per event (see :func:`predict`)."""
        return predict(self, events)

    def fom_table(self) -> FomTable:
        """The figure of merit measured at the end of training (on the test part: see
        :func:`train`), with the cut it was measured at."""
        names = list(FomRow.__dataclass_fields__)
        rows = [FomRow(**{k: r[k] for k in names if k in r}) for r in self.record.get("fom", [])]
        split = self.record.get("fom_split", "test")
        return FomTable(
            rows,
            float(self.record.get("fom_cut", PRL_OUTPUT_CUT)),
            float(self.record.get("luminosity_fb", math.nan)),
            note=TEST_NOTE if split == "test" else "",
        )

    def cut_scan(self) -> dict[str, Any]:
        """The per-test-mass scan of the figure of merit versus the output cut (on the test
        part): ``{"cuts": [...], "rows": [{"mass_gev", "efficiency", "background",
        "sigma_min_fb"}, ...]}``, one list entry per cut in each row."""
        return dict(self.record.get("cut_scan", {"cuts": list(SCAN_CUTS), "rows": []}))


def predict(model: TrainedPunziNet, events: Any, *, batch_size: int = 1_000_000) -> np.ndarray:
    """Network output in [0, 1] for every event (float64 array).

    Raises
    ------
    InputError
        A feature column is missing or holds NaN/infinite values.
    """
    x, _, _ = _extract(events, model.features, "punzinet input", need_truth=False)
    model.network.eval()
    out = _outputs(model.network, torch.from_numpy(x.astype(np.float32)), batch_size)
    return out.numpy().astype(np.float64)


def apply(model: TrainedPunziNet, events: Any, *, column: str = OUTPUT_COLUMN) -> Any:
    """``events`` with the network output added as column ``column`` (default ``punzinet``).

    An awkward array gets a new field; a mapping is copied into a new dict.
    """
    out = predict(model, events)
    if isinstance(events, ak.Array):
        return ak.with_field(events, out, column)
    return {**dict(events), column: out}


# ---------------------------------------------------------------------------------------------
# hard-cut figure of merit (for reporting)


def punzi_fom(
    signals: Sequence[SignalSample] | Mapping[float, tuple[Any, float]],
    background: Any,
    *,
    luminosity_fb: float,
    model: TrainedPunziNet | None = None,
    config: PunziNetConfig | None = None,
    resolution: Resolution | Any = default_resolution,
    cut: float | None = None,
) -> FomTable:
    """Per mass window, the Punzi figure of merit with a hard network cut and without it.

    This is the non-differentiable figure of merit the network approximates: in the window
    ``|M_recoil^2 - M^2| < N sigma(M^2)``, eps = (summed weight of the signal events of that
    mass passing) / (summed weight of all generated events of that mass), B = L x (summed
    weight of the background passing), and :func:`sigma_min`. The sensitivity gain of the
    network is ``sigma_min without / with the cut`` (PRL 130, 231801: "a sensitivity gain
    between 5 and 15, depending on the mass").

    Parameters
    ----------
    signals, background
        As for :func:`train` (independent events for an unbiased figure).
    luminosity_fb
        Luminosity, fb^-1.
    model
        The network; ``None`` (or events already carrying a ``punzinet`` column) uses the
        column ``punzinet`` of the events.
    config
        Supplies a, b, the window half-width and the default cut (default: the model's
        configuration, else :class:`~zprime.config.PunziNetConfig`).
    resolution
        sigma(M^2), GeV^2 (callable or object with ``sigma``).
    cut
        Network output cut (default :data:`PRL_OUTPUT_CUT`, 0.5 as in the PRL; the pipeline passes
        ``selection.punzinet_min``).
    """
    cfg = config or (model.config if model is not None else PunziNetConfig())
    c = PRL_OUTPUT_CUT if cut is None else float(cut)
    samples = _as_signal_samples(signals)
    masses = np.array([s.mass_gev for s in samples])
    low, high = _window_bounds(masses, _resolution_callable(resolution), cfg.window_sigmas)

    def _output(events: Any, where: str) -> np.ndarray:
        if model is not None:
            return predict(model, events)
        return _column(events, OUTPUT_COLUMN, where)

    sig = []
    for s in samples:
        where = f"punzinet signal M = {s.mass_gev:g} GeV"
        _, m2, w = _extract(s.events, (), where)
        sig.append((m2, w / s.total_weight, _output(s.events, where)))
    _, bm2, bw = _extract(background, (), "punzinet background")
    bkg = (bm2, bw, _output(background, "punzinet background"))
    rows = _fom_rows(
        masses,
        low,
        high,
        sig,
        bkg,
        cut=c,
        luminosity_fb=luminosity_fb,
        a=cfg.a,
        b=cfg.b,
        refined_constant=cfg.refined_constant,
    )
    return FomTable(rows, c, luminosity_fb)


# ---------------------------------------------------------------------------------------------
# files


def read_training_files(
    signal_paths: Sequence[str | Path],
    background_paths: Sequence[str | Path],
    features: Sequence[str] = FEATURES,
) -> tuple[list[SignalSample], dict[str, np.ndarray]]:
    """Read selected signal and background Parquet files for :func:`train`.

    Each signal file is one mass: its metadata (written by ``zprime generate signal`` and kept by
    the detector simulation and the selection) give ``mass_gev`` and ``sigma_fb``, the summed
    weight of all generated events (the efficiency denominator). The background files are
    concatenated.

    Raises
    ------
    InputError
        A missing or corrupt file, a missing column, or a signal file without its metadata.
    """
    cols = [*features, MASS2_COLUMN, WEIGHT_COLUMN]

    def _read(path: str | Path) -> dict[str, np.ndarray]:
        ev = read_events(path, cols)
        return {c: np.asarray(ak.to_numpy(ev[c]), dtype=np.float64) for c in cols}

    signals = []
    for path in signal_paths:
        meta = read_metadata(path)
        for key in ("mass_gev", "sigma_fb"):
            if not isinstance(meta.get(key), int | float):
                raise InputError(f"{path}: metadata lack '{key}' (not a zprime signal sample)")
        signals.append(SignalSample(float(meta["mass_gev"]), _read(path), float(meta["sigma_fb"])))
    if not background_paths:
        raise InputError("punzinet: no background files given")
    parts = [_read(p) for p in background_paths]
    background = {c: np.concatenate([p[c] for p in parts]) for c in cols}
    return signals, background


# ---------------------------------------------------------------------------------------------
# saving and loading


def save(model: TrainedPunziNet, path: str | Path) -> Path:
    """Write the network, input scaling, features, configuration, record and versions.

    The file (``torch.save`` of plain types and tensors, readable with ``weights_only=True``) is
    written atomically.
    """
    net = model.network
    payload = {
        "format": FILE_FORMAT,
        "format_version": FILE_VERSION,
        "features": list(model.features),
        "hidden_layers": [int(h) for h in model.config.hidden_layers],
        "activation": model.config.activation,
        "members": len(net.members) if isinstance(net, PunziEnsemble) else 1,
        "state_dict": {k: v.detach().clone() for k, v in net.state_dict().items()},
        "config": model.config.model_dump(mode="json"),
        "record": model.record,
        "versions": dict(model.versions),
    }
    target = Path(path)
    with atomic_path(target) as tmp:
        torch.save(payload, tmp)
    return target


def load(path: str | Path, features: Sequence[str] | None = None) -> TrainedPunziNet:
    """Read a network written by :func:`save`.

    Parameters
    ----------
    path
        The file.
    features
        If given, the input columns the caller will provide; they must equal the trained ones.

    Raises
    ------
    InputError
        Missing, corrupt or foreign file, or a feature mismatch (one line naming the file).
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: file not found")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds (pickle, zip, runtime) for a bad file
        raise InputError(f"{p}: not a readable Punzi-net file ({err.__class__.__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FILE_FORMAT:
        raise InputError(f"{p}: not a zprime Punzi-net file")
    if payload.get("format_version") != FILE_VERSION:
        raise InputError(
            f"{p}: Punzi-net file version {payload.get('format_version')} "
            f"(this zprime reads {FILE_VERSION})"
        )
    stored = tuple(payload.get("features", ()))
    if features is not None and tuple(features) != stored:
        raise InputError(f"{p}: network trained on features {list(stored)}, got {list(features)}")
    try:
        cfg = PunziNetConfig.model_validate(payload["config"])
        n_members = int(payload.get("members", 1))
        parts = [
            PunziNetwork(len(stored), payload["hidden_layers"], payload["activation"])
            for _ in range(n_members)
        ]
        net: PunziNetwork | PunziEnsemble = parts[0] if n_members == 1 else PunziEnsemble(parts)
        net.load_state_dict(payload["state_dict"])
    except Exception as err:  # a damaged or inconsistent payload
        raise InputError(f"{p}: inconsistent Punzi-net file ({err.__class__.__name__})") from None
    net.eval()
    return TrainedPunziNet(
        net, stored, cfg, record=payload.get("record", {}), versions=payload.get("versions", {})
    )
