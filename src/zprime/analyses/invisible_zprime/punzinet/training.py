"""Training of the Punzi-net: the data split, BCE pre-training, the Punzi-loss phase and the
test report.

Owns :func:`train` and everything only it uses: the split of the signal masses into training
and test hypotheses (:func:`_mass_split`) and of the events into training, validation and test
parts with their torch tensors and windows, the weighted-BCE pre-training and the full-batch
Punzi-loss phase (plain SGD, ``ReduceLROnPlateau`` stepped on the validation loss, early
stopping that keeps the best epoch), the ensemble members' seeding, the progress bar, and the
figure of merit and cut scan measured on the test part for the training record.

Warnings go to the logger of the package, ``zprime.analyses.invisible_zprime.punzinet``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn

from zprime._util import package_versions
from zprime.analyses.invisible_zprime.punzinet.fom import SCAN_CUTS, _cut_scan, _fom_rows
from zprime.analyses.invisible_zprime.punzinet.inputs import (
    FEATURES,
    PRL_OUTPUT_CUT,
    Resolution,
    SignalSample,
    _as_signal_samples,
    _extract,
    _resolution_callable,
    default_resolution,
)
from zprime.analyses.invisible_zprime.punzinet.loss import (
    Windows,
    _window_bounds,
    make_windows,
    punzi_loss,
)
from zprime.analyses.invisible_zprime.punzinet.model import TrainedPunziNet
from zprime.analyses.invisible_zprime.punzinet.network import (
    PunziEnsemble,
    PunziNetwork,
    _deterministic,
    _outputs,
)
from zprime.config import PunziNetConfig
from zprime.errors import ConfigError, InputError

# the package's logger (not this module's): warnings are named after the Punzi-net as a whole
log = logging.getLogger(__package__)


@dataclass
class _Part:
    """Events of one role as numpy arrays: inputs, M_recoil^2 and weight.

    For signal the weight is the efficiency weight ``w / W_i`` (times the split's scale); for
    background the cross section per event in fb (times the split's scale).
    """

    x: np.ndarray
    m2: np.ndarray
    w: np.ndarray

    def take(self, idx: np.ndarray, scale: float = 1.0) -> _Part:
        """The rows ``idx`` with weights multiplied by ``scale``."""
        return _Part(self.x[idx], self.m2[idx], self.w[idx] * scale)

    def inside(self, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """Mask of the rows inside at least one of the windows ``(low, high)``."""
        m = np.zeros(len(self.m2), dtype=bool)
        for lo, hi in zip(low, high, strict=True):
            m |= (self.m2 > lo) & (self.m2 < hi)
        return m


@dataclass
class _Split:
    """One split (training or validation) of the in-window events, ready for torch."""

    x: torch.Tensor  # [n, n_features] float32, signal rows first (by hypothesis), then background
    label: torch.Tensor  # float32
    bce_weight: torch.Tensor  # float32
    windows: Windows
    n_signal: list[int]
    n_background: int


@dataclass
class _Prepared:
    """Everything :func:`train` needs: the torch splits and the numpy parts for the reports."""

    train: _Split
    val: _Split
    masses: np.ndarray  # every hypothesis, sorted
    low: np.ndarray
    high: np.ndarray
    is_train_mass: np.ndarray  # bool per hypothesis
    signal_all: list[_Part]  # per hypothesis: every selected event (weight w / W_i)
    background_train: _Part  # the training split (weights scaled to the full sample)
    background_test: _Part  # the test split (weights / test fraction)
    info: dict[str, Any]


def _split_indices(n: int, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """(rest, held) sorted index arrays; ``held`` has ``round(fraction n)`` random rows."""
    perm = rng.permutation(n)
    n_held = round(fraction * n)
    return np.sort(perm[n_held:]), np.sort(perm[:n_held])


def _build_split(
    masses: np.ndarray,
    sig: list[_Part],
    bkg: _Part,
    *,
    luminosity_fb: float,
    resolution: Resolution,
    window_sigmas: float,
) -> _Split:
    x = np.concatenate([s.x for s in sig] + [bkg.x], axis=0)
    n_sig = [len(s.m2) for s in sig]
    n_bkg = len(bkg.m2)
    windows = make_windows(
        masses,
        [s.m2 for s in sig],
        [s.w for s in sig],
        bkg.m2,
        bkg.w,
        luminosity_fb=luminosity_fb,
        resolution=resolution,
        window_sigmas=window_sigmas,
    )
    label = np.concatenate([np.ones(sum(n_sig)), np.zeros(n_bkg)])
    # BCE weights ([PL] prepare.set_weights): signal and background classes with the same
    # total; background by luminosity weight, signal by efficiency weight w/W_i (in [PL] every
    # signal mass has the same number of generated events, so its unit weights are w/W_i too).
    w_sig = np.concatenate([s.w for s in sig])
    tot_s, tot_b = float(w_sig.sum()), float(bkg.w.sum())
    if tot_s <= 0 or (n_bkg > 0 and tot_b <= 0):
        raise InputError("punzinet: signal and background need positive total weight")
    # a split may lack background in the training windows (tiny samples; a warning names the
    # windows): its BCE is then the signal term alone
    parts = [w_sig / tot_s] + ([bkg.w / tot_b] if n_bkg > 0 else [])
    bce = np.concatenate(parts) * len(label) / len(parts)
    return _Split(
        torch.from_numpy(x.astype(np.float32)),
        torch.from_numpy(label.astype(np.float32)),
        torch.from_numpy(bce.astype(np.float32)),
        windows,
        n_sig,
        n_bkg,
    )


def _mass_split(n: int) -> np.ndarray:
    """Training hypotheses among ``n`` sorted masses: the even indices (0, 2, 4, ...) and the
    last one.

    The other (odd) indices are the test masses, never seen in training ([PL] notebook: trained
    on every other simulated mass, ``mass_range = np.arange(100, 8800, 200)`` of samples in
    100 MeV steps). The highest mass always trains so that every test mass lies between two
    training masses: the network interpolates in mass, it is not asked to extrapolate (with the
    22 default masses the 8.5 GeV sample would otherwise be a test mass beyond the last
    training window, where the network removed nearly all of its signal). A single mass is a
    training mass (no test mass).
    """
    train = np.arange(n) % 2 == 0
    train[n - 1 :] = True
    return train


def _prepare(
    samples: list[SignalSample],
    background: Any,
    features: Sequence[str],
    *,
    config: PunziNetConfig,
    luminosity_fb: float,
    resolution: Resolution,
) -> _Prepared:
    masses = np.array([s.mass_gev for s in samples])
    low, high = _window_bounds(masses, resolution, config.window_sigmas)
    is_train = _mass_split(len(masses))
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 1]))
    vfrac = config.validation_fraction
    signal_all: list[_Part] = []
    train_sig: list[_Part] = []
    val_sig: list[_Part] = []
    for i, s in enumerate(samples):
        where = f"punzinet signal M = {s.mass_gev:g} GeV"
        x, m2, w = _extract(s.events, features, where)
        part = _Part(x, m2, w / s.total_weight)
        signal_all.append(part)
        if not is_train[i]:
            continue
        keep = np.flatnonzero((m2 > low[i]) & (m2 < high[i]))
        n = len(keep)
        tr, va = _split_indices(n, vfrac, rng)
        if len(tr) == 0 or len(va) == 0:
            raise InputError(
                f"{where}: only {n} events in its M_recoil^2 window [{low[i]:.4g}, "
                f"{high[i]:.4g}] GeV^2, too few to train and validate"
            )
        # each split estimates the full-sample efficiency: weights scaled by n / n_split
        train_sig.append(part.take(keep[tr], n / len(tr)))
        val_sig.append(part.take(keep[va], n / len(va)))
    xb, m2b, wb = _extract(background, features, "punzinet background")
    bkg = _Part(xb, m2b, wb)
    # only events inside some window (training or test) matter; the split is event by event,
    # so splitting the in-window events is a random split of the whole sample restricted to them
    bkg = bkg.take(np.flatnonzero(bkg.inside(low, high)))
    nb = len(bkg.m2)
    rest, test = _split_indices(nb, 1.0 - config.training_fraction, rng)
    tr, va = _split_indices(len(rest), vfrac, rng)
    tr, va = rest[tr], rest[va]
    if nb == 0:
        raise InputError("punzinet background: no events inside the mass windows")
    # each split estimates the full sample: weights scaled by n / n_split (for the test split
    # that is 1 / test fraction: an honest estimate of an independent sample of its size)
    bkg_train = bkg.take(tr, nb / max(1, len(tr)))
    bkg_val = bkg.take(va, nb / max(1, len(va)))
    bkg_test = bkg.take(test, nb / max(1, len(test)))
    tm = masses[is_train]
    in_train = [
        p.take(np.flatnonzero(p.inside(low[is_train], high[is_train])))
        for p in (bkg_train, bkg_val)
    ]
    kw: dict[str, Any] = {
        "luminosity_fb": luminosity_fb,
        "resolution": resolution,
        "window_sigmas": config.window_sigmas,
    }
    train_split = _build_split(tm, train_sig, in_train[0], **kw)
    val_split = _build_split(tm, val_sig, in_train[1], **kw)
    empty = [
        f"{m:g}"
        for k, m in enumerate(tm)
        if not np.any(train_split.windows.background_window.numpy() == k)
    ]
    if empty:
        # sigma_min there depends on the efficiency only: the loss pushes those windows'
        # signal to output 1 whatever the background would do
        log.warning(
            "punzinet: no training background in the window(s) of M = %s GeV", ", ".join(empty)
        )
    info = {
        "masses_gev": masses.tolist(),
        "train_masses_gev": tm.tolist(),
        "test_masses_gev": masses[~is_train].tolist(),
        "window_low_gev2": low.tolist(),
        "window_high_gev2": high.tolist(),
        "n_train_signal": train_split.n_signal,
        "n_train_background": train_split.n_background,
        "n_val_signal": val_split.n_signal,
        "n_val_background": val_split.n_background,
        "n_test_background": len(test),
        "windows_without_training_background": empty,
    }
    return _Prepared(
        train_split,
        val_split,
        masses,
        low,
        high,
        is_train,
        signal_all,
        bkg_train,
        bkg_test,
        info,
    )


def _progress_bar(enabled: bool) -> Any:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}  val {task.fields[val]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )


def _fmt(x: float) -> str:
    return f"{x:.5g}" if math.isfinite(x) else "-"


class _EarlyStop:
    """Keeps the best state; says when ``patience`` epochs passed without relative gain."""

    def __init__(self, network: nn.Module, patience: int, min_delta: float) -> None:
        self.network = network
        self.patience = patience
        self.min_delta = min_delta
        self.best = math.inf
        self.best_epoch = -1
        self.state = {k: v.clone() for k, v in network.state_dict().items()}

    def update(self, value: float, epoch: int) -> bool:
        """Record ``value`` of ``epoch``; True if training should stop."""
        if value < self.best * (1.0 - self.min_delta) or (
            not math.isfinite(self.best) and math.isfinite(value)
        ):
            self.best, self.best_epoch = value, epoch
            self.state = {k: v.clone() for k, v in self.network.state_dict().items()}
        return epoch - self.best_epoch >= self.patience

    def restore(self) -> None:
        self.network.load_state_dict(self.state)


def _plateau(opt: torch.optim.Optimizer, patience: int, cfg: PunziNetConfig) -> Any:
    """[PL] train.py: ``ReduceLROnPlateau(mode='min', factor=0.5, patience=...)``, relative
    threshold 1e-4 (torch's default, = ``min_delta``)."""
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=cfg.lr_factor, patience=patience, threshold=cfg.min_delta
    )


def _bce_phase(
    net: PunziNetwork,
    train_s: _Split,
    val_s: _Split,
    cfg: PunziNetConfig,
    gen: torch.Generator,
    bar: Any,
) -> dict[str, Any]:
    losses: list[float] = []
    val_losses: list[float] = []
    lrs: list[float] = []
    if cfg.bce_epochs == 0:
        return {"bce_train": losses, "bce_val": val_losses, "bce_lr": lrs, "bce_best_epoch": -1}
    # [PL] train.bce_training: plain SGD (lr 1) on shuffled mini-batches, the rate halved when
    # the loss stalls; we monitor the validation loss instead of the training loss and keep the
    # best epoch
    opt = torch.optim.SGD(net.parameters(), lr=cfg.bce_learning_rate)
    sched = _plateau(opt, cfg.bce_lr_patience, cfg)
    loss_fn = nn.BCEWithLogitsLoss(reduction="none")
    stop = _EarlyStop(net, cfg.bce_patience, cfg.min_delta)
    task = bar.add_task("BCE pre-training", total=cfg.bce_epochs, loss="-", val="-")
    n = len(train_s.x)
    for epoch in range(cfg.bce_epochs):
        net.train()
        perm = torch.randperm(n, generator=gen)
        total, wsum = 0.0, 0.0
        for start in range(0, n, cfg.bce_batch_size):
            idx = perm[start : start + cfg.bce_batch_size]
            w = train_s.bce_weight[idx]
            loss = (loss_fn(net.logits(train_s.x[idx]), train_s.label[idx]) * w).sum() / w.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * float(w.sum())
            wsum += float(w.sum())
        losses.append(total / wsum)
        net.eval()
        with torch.no_grad():
            vl = loss_fn(net.logits(val_s.x), val_s.label) * val_s.bce_weight
            monitor = float(vl.sum() / val_s.bce_weight.sum())
        val_losses.append(monitor)
        lrs.append(float(opt.param_groups[0]["lr"]))
        bar.update(task, advance=1, loss=_fmt(losses[-1]), val=_fmt(monitor))
        sched.step(monitor)
        if stop.update(monitor, epoch):
            break
    stop.restore()
    return {
        "bce_train": losses,
        "bce_val": val_losses,
        "bce_lr": lrs,
        "bce_best_epoch": stop.best_epoch,
    }


def _punzi_phase(
    net: PunziNetwork,
    train_s: _Split,
    val_s: _Split,
    cfg: PunziNetConfig,
    luminosity_fb: float,
    bar: Any,
) -> dict[str, Any]:
    losses: list[float] = []
    val_losses: list[float] = []
    lrs: list[float] = []
    if cfg.punzi_epochs == 0:
        return {
            "punzi_train": losses,
            "punzi_val": val_losses,
            "punzi_lr": lrs,
            "punzi_best_epoch": -1,
        }
    kw: dict[str, Any] = {
        "luminosity_fb": luminosity_fb,
        "a": cfg.a,
        "b": cfg.b,
        "refined_constant": cfg.refined_constant,
        "background_floor": cfg.background_floor,
    }
    # [PL] train.punzi_training: full batch (the loss needs whole-window sums), plain SGD
    # (notebook: lr 0.05, 500 epochs), ReduceLROnPlateau(factor 0.5, patience 20); we step the
    # schedule on the validation loss and keep the best epoch (early stopping)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.punzi_learning_rate)
    sched = _plateau(opt, cfg.punzi_lr_patience, cfg)
    stop = _EarlyStop(net, cfg.patience, cfg.min_delta)
    task = bar.add_task("Punzi-loss training", total=cfg.punzi_epochs, loss="-", val="-")

    def _val() -> float:
        net.eval()
        with torch.no_grad():
            return float(punzi_loss(net(val_s.x), val_s.windows, **kw)[0])

    # epoch -1: the network after pre-training
    stop.update(_val(), -1)
    for epoch in range(cfg.punzi_epochs):
        net.train()
        loss, _ = punzi_loss(net(train_s.x), train_s.windows, **kw)
        if not torch.isfinite(loss):
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        # the validation loss of the updated weights (the training loss is that of the weights
        # before the step)
        monitor = _val()
        val_losses.append(monitor)
        lrs.append(float(opt.param_groups[0]["lr"]))
        bar.update(task, advance=1, loss=_fmt(losses[-1]), val=_fmt(monitor))
        sched.step(monitor)
        if stop.update(monitor, epoch):
            break
    stop.restore()
    return {
        "punzi_train": losses,
        "punzi_val": val_losses,
        "punzi_lr": lrs,
        "punzi_best_epoch": stop.best_epoch,
    }


def train(
    signals: Sequence[SignalSample] | Mapping[float, tuple[Any, float]],
    background: Any,
    *,
    config: PunziNetConfig | None = None,
    luminosity_fb: float,
    resolution: Resolution | Any = default_resolution,
    features: Sequence[str] = FEATURES,
    progress: bool = True,
    cut: float = PRL_OUTPUT_CUT,
) -> TrainedPunziNet:
    """Train the Punzi-net: weighted-BCE pre-training, then the Punzi loss of the training masses.

    The signal masses, sorted, alternate between training (even indices) and test (odd
    indices) hypotheses; the background events are split at random (seeded) into a training
    part (``training_fraction``, of which ``validation_fraction`` validates) and a test part.
    The figure of merit of the record is measured on the test part.

    Parameters
    ----------
    signals
        Selected signal samples, one per mass: :class:`SignalSample` objects, ``(mass, events,
        total_weight)`` tuples, or a mapping ``mass -> (events, total_weight)``. ``events`` hold
        the ``features``, ``m_recoil2`` and ``weight``; ``total_weight`` is the summed weight of
        all *generated* events of that mass (fb, the efficiency denominator).
    background
        Selected background events (all samples concatenated), same columns, weight in fb.
    config
        Network and training settings (default: :class:`~zprime.config.PunziNetConfig`).
    luminosity_fb
        Integrated luminosity at which the figure of merit is optimised, fb^-1.
    resolution
        Signal M_recoil^2 resolution sigma(M^2), GeV^2: a callable or an object with a
        ``sigma`` method such as :class:`zprime.analyses.invisible_zprime.binning.ResolutionModel`
        (the measured one the
        fit uses; default :func:`default_resolution`).
    features
        Input columns (default: the PRL's four).
    progress
        Show a rich progress bar with epoch and loss (on stderr).
    cut
        Network output cut of the figure-of-merit report (the pipeline passes
        ``selection.punzinet_min``).

    Returns
    -------
    TrainedPunziNet
        The network at the epoch of lowest validation loss, with its training record.

    Raises
    ------
    InputError
        Missing columns, NaN values, or a window without enough events.
    """
    cfg = config or PunziNetConfig()
    if luminosity_fb <= 0:
        raise ConfigError(f"punzinet: luminosity must be positive, got {luminosity_fb}")
    res = _resolution_callable(resolution)
    samples = _as_signal_samples(signals)
    feats = tuple(features)
    t0 = time.perf_counter()
    prep = _prepare(
        samples, background, feats, config=cfg, luminosity_fb=luminosity_fb, resolution=res
    )
    train_s, val_s = prep.train, prep.val
    x = train_s.x.to(torch.float64).numpy()
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std[std == 0] = 1.0
    t_prep = time.perf_counter() - t0
    members: list[PunziNetwork] = []
    member_records: list[dict[str, Any]] = []
    first: tuple[Any, ...] = ()
    with _deterministic(cfg.threads), _progress_bar(progress) as bar:
        for k in range(cfg.ensemble):
            # the split is fixed by cfg.seed (in _prepare); member k starts from seed + 1000 k
            init_seed = cfg.seed + 1000 * k
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(init_seed)
                member = PunziNetwork(len(feats), cfg.hidden_layers, cfg.activation, mean, std)
            gen = torch.Generator().manual_seed(init_seed)
            t1 = time.perf_counter()
            rec_bce = _bce_phase(member, train_s, val_s, cfg, gen, bar)
            t2 = time.perf_counter()
            rec_punzi = _punzi_phase(member, train_s, val_s, cfg, luminosity_fb, bar)
            t3 = time.perf_counter()
            member.eval()
            if k == 0:  # the record's loss curves and timings are those of the first member
                first = (rec_bce, rec_punzi, t1, t2, t3)
            members.append(member)
            member_records.append(
                {
                    "init_seed": init_seed,
                    "punzi_best_val": float(min(rec_punzi.get("punzi_val") or [math.nan])),
                    "seconds": t3 - t1,
                }
            )
    rec_bce, rec_punzi, t1, t2, t3 = first
    net: PunziNetwork | PunziEnsemble = members[0] if len(members) == 1 else PunziEnsemble(members)
    net.eval()
    model = TrainedPunziNet(net, feats, cfg.model_copy(deep=True), versions=package_versions())
    record: dict[str, Any] = {
        **prep.info,
        "luminosity_fb": float(luminosity_fb),
        "resolution_gev2": np.asarray(res(prep.masses**2), dtype=np.float64).tolist(),
        **rec_bce,
        **rec_punzi,
        "seconds_prepare": t_prep,
        "seconds_bce": t2 - t1,
        "seconds_punzi": t3 - t2,
        "seconds_per_punzi_epoch": (t3 - t2) / max(1, len(rec_punzi["punzi_train"])),
        "ensemble": member_records,
    }
    t4 = time.perf_counter()
    report = _test_report(prep, net, cfg, luminosity_fb, cut)
    record.update(report)
    record["seconds_report"] = time.perf_counter() - t4
    model.record = record
    return model


def _test_report(
    prep: _Prepared,
    net: PunziNetwork | PunziEnsemble,
    cfg: PunziNetConfig,
    luminosity_fb: float,
    cut: float,
) -> dict[str, Any]:
    """Figure of merit with the hard cut on the independent test events, and the cut scan.

    Test masses: their whole signal samples (never used in training) with the test background.
    Training masses: their whole signal samples (partly trained on; labelled) with the same
    test background. Each row also carries the training split's background in its window, for
    the over-training ratio (fraction of background kept, training / test).
    """

    def out(part: _Part) -> np.ndarray:
        return _outputs(net, torch.from_numpy(part.x.astype(np.float32))).numpy().astype(np.float64)

    sig = [(p.m2, p.w, out(p)) for p in prep.signal_all]
    bt, btr = prep.background_test, prep.background_train
    kw: dict[str, Any] = {
        "luminosity_fb": luminosity_fb,
        "a": cfg.a,
        "b": cfg.b,
        "refined_constant": cfg.refined_constant,
    }
    rows = _fom_rows(
        prep.masses,
        prep.low,
        prep.high,
        sig,
        (bt.m2, bt.w, out(bt)),
        cut=cut,
        training_background=(btr.m2, btr.w, out(btr)),
        samples=["train mass" if t else "test mass" for t in prep.is_train_mass],
        **kw,
    )
    test = np.flatnonzero(~prep.is_train_mass)
    scan = _cut_scan(
        prep.masses[test],
        prep.low[test],
        prep.high[test],
        [sig[i] for i in test],
        (bt.m2, bt.w, out(bt)),
        SCAN_CUTS,
        **kw,
    )
    return {
        "fom_cut": float(cut),
        "fom_split": "test",
        "fom": [r.to_dict() for r in rows],
        "cut_scan": scan,
    }
