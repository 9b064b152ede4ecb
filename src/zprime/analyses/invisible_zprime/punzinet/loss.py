"""The Punzi figure of merit, the mass windows and the differentiable Punzi loss.

Owns :func:`sigma_min` (Punzi's minimum detectable cross section, for numpy arrays and torch
tensors), the window bounds ``|M_recoil^2 - M^2| < N sigma(M^2)``, :class:`Windows` (which rows
of an output vector enter which window, with which weight) built by :func:`make_windows`, and
:func:`punzi_loss`, the mean over the hypotheses of sigma_min with output-weighted efficiency
and background.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from zprime.analyses.invisible_zprime.punzinet.inputs import Resolution, default_resolution
from zprime.errors import ConfigError

# ---------------------------------------------------------------------------------------------
# figure of merit


def sigma_min(
    efficiency: Any,
    background: Any,
    *,
    luminosity_fb: float,
    a: float = 3.0,
    b: float = 1.28155,
    refined_constant: bool = False,
) -> Any:
    """Punzi's minimum detectable cross section, fb (numpy arrays or torch tensors).

    ``sigma_min = [c + a sqrt(B) + (b/2) sqrt(b^2 + 4 a sqrt(B) + 4 B)] / (eps L)`` with
    ``c = b^2/2``, or ``c = a^2/8 + 9 b^2/13`` if ``refined_constant`` (G. Punzi, eConf C030908,
    MODT002 (2003), arXiv:physics/0308063).

    Parameters
    ----------
    efficiency
        Signal efficiency eps (fraction of all generated signal events).
    background
        Expected background events B at the luminosity (not per fb).
    luminosity_fb
        Integrated luminosity L, fb^-1.
    a, b
        Significance of the discovery and of the exclusion power, in Gaussian sigmas.
    refined_constant
        Use Punzi's improved constant term.
    """
    const = a * a / 8.0 + 9.0 * b * b / 13.0 if refined_constant else b * b / 2.0
    root_b = background**0.5
    numerator = const + a * root_b + 0.5 * b * (b * b + 4.0 * a * root_b + 4.0 * background) ** 0.5
    return numerator / (efficiency * luminosity_fb)


# ---------------------------------------------------------------------------------------------
# windows and the differentiable loss


def _window_bounds(
    masses: np.ndarray, resolution: Resolution, n_sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    m2 = np.asarray(masses, dtype=np.float64) ** 2
    sigma = np.asarray(resolution(m2), dtype=np.float64)
    if sigma.shape != m2.shape or not np.all(np.isfinite(sigma) & (sigma > 0)):
        raise ConfigError(f"punzinet: resolution must be positive at M^2 = {m2.tolist()}")
    return m2 - n_sigma * sigma, m2 + n_sigma * sigma


@dataclass
class Windows:
    """Which rows of an output vector enter which mass window, and with which weight.

    Signal row ``signal_rows[k]`` adds ``signal_weight[k] * y`` to the efficiency of window
    ``signal_window[k]`` (weight = w / W_i); background row ``background_rows[k]`` adds
    ``background_weight[k] * y`` to the expected background of window ``background_window[k]``
    (weight = w L, events). A background row appears once per window it falls in.
    """

    masses_gev: np.ndarray
    low: np.ndarray
    high: np.ndarray
    signal_rows: torch.Tensor
    signal_window: torch.Tensor
    signal_weight: torch.Tensor
    background_rows: torch.Tensor
    background_window: torch.Tensor
    background_weight: torch.Tensor

    @property
    def n_windows(self) -> int:
        """Number of mass hypotheses."""
        return len(self.masses_gev)

    def mean_background_weight(self) -> torch.Tensor:
        """Per window, the mean weight (events) of its background rows; 0 without any."""
        k = self.n_windows
        total = torch.zeros(k, dtype=torch.float64).index_add(
            0, self.background_window, self.background_weight
        )
        count = torch.zeros(k, dtype=torch.float64).index_add(
            0, self.background_window, torch.ones_like(self.background_weight)
        )
        return total / count.clamp_min(1.0)

    def sums(self, output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-window efficiency and expected background for per-row weights ``output``."""
        out = output.to(torch.float64)
        k = self.n_windows
        eps = torch.zeros(k, dtype=torch.float64).index_add(
            0, self.signal_window, out[self.signal_rows] * self.signal_weight
        )
        bkg = torch.zeros(k, dtype=torch.float64).index_add(
            0, self.background_window, out[self.background_rows] * self.background_weight
        )
        return eps, bkg


def make_windows(
    masses_gev: Sequence[float],
    signal_m2: Sequence[np.ndarray],
    signal_weight: Sequence[np.ndarray],
    background_m2: np.ndarray,
    background_weight: np.ndarray,
    *,
    luminosity_fb: float,
    resolution: Resolution = default_resolution,
    window_sigmas: float = 2.0,
    signal_offset: int = 0,
    background_offset: int | None = None,
) -> Windows:
    """Build the window membership of signal and background rows.

    Parameters
    ----------
    masses_gev
        The hypotheses; ``signal_m2[i]`` / ``signal_weight[i]`` belong to ``masses_gev[i]``.
    signal_m2, signal_weight
        Per hypothesis: M_recoil^2 and the efficiency weight ``w / W_i`` of its signal events.
    background_m2, background_weight
        M_recoil^2 and weight (fb) of the background events.
    luminosity_fb
        Luminosity; background weights are multiplied by it (events).
    resolution
        sigma(M^2) in GeV^2.
    window_sigmas
        Half-width of the windows in units of sigma.
    signal_offset, background_offset
        Row of the first signal event and of the first background event in the output vector
        (default: the signal events of all hypotheses in order, then the background).
    """
    masses = np.asarray(masses_gev, dtype=np.float64)
    low, high = _window_bounds(masses, resolution, window_sigmas)
    sig_rows, sig_win, sig_w = [], [], []
    row = signal_offset
    for i, (m2, w) in enumerate(zip(signal_m2, signal_weight, strict=True)):
        m2 = np.asarray(m2, dtype=np.float64)
        inside = np.flatnonzero((m2 > low[i]) & (m2 < high[i]))
        sig_rows.append(inside + row)
        sig_win.append(np.full(len(inside), i))
        sig_w.append(np.asarray(w, dtype=np.float64)[inside])
        row += len(m2)
    if background_offset is None:
        background_offset = row
    bm2 = np.asarray(background_m2, dtype=np.float64)
    bw = np.asarray(background_weight, dtype=np.float64) * luminosity_fb
    bkg_rows, bkg_win, bkg_w = [], [], []
    for i in range(len(masses)):
        inside = np.flatnonzero((bm2 > low[i]) & (bm2 < high[i]))
        bkg_rows.append(inside + background_offset)
        bkg_win.append(np.full(len(inside), i))
        bkg_w.append(bw[inside])

    def _cat_long(parts: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.concatenate(parts).astype(np.int64))

    def _cat_f64(parts: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.concatenate(parts).astype(np.float64))

    return Windows(
        masses,
        low,
        high,
        _cat_long(sig_rows),
        _cat_long(sig_win),
        _cat_f64(sig_w),
        _cat_long(bkg_rows),
        _cat_long(bkg_win),
        _cat_f64(bkg_w),
    )


def punzi_loss(
    output: torch.Tensor,
    windows: Windows,
    *,
    luminosity_fb: float,
    a: float = 3.0,
    b: float = 1.28155,
    refined_constant: bool = False,
    background_floor: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Punzi loss: mean over the hypotheses of sigma_min with output-weighted eps and B.

    Parameters
    ----------
    output
        Network output per row of ``windows``.
    windows
        Window membership and weights (:func:`make_windows`).
    luminosity_fb, a, b, refined_constant
        As for :func:`sigma_min`.
    background_floor
        ``B`` of window i gets ``background_floor`` times the mean weight (events) of its
        background rows added: a simulated sample cannot tell a background below about one of
        its events from zero. 0 (the default) is the bare loss of [PL].

    Returns
    -------
    (loss, sigma_min per window)
        Scalar loss (fb) and the per-window values (float64 tensors, differentiable in
        ``output``).
    """
    eps, bkg = windows.sums(output)
    if background_floor > 0.0:
        bkg = bkg + background_floor * windows.mean_background_weight()
    # A window without background has B = 0 and an infinite derivative of sqrt(B) times a zero
    # derivative of B: the floor keeps the product 0 instead of NaN; it changes no value above
    # 1e-12 events.
    bkg = bkg.clamp_min(1e-12)
    sig = sigma_min(
        eps, bkg, luminosity_fb=luminosity_fb, a=a, b=b, refined_constant=refined_constant
    )
    return sig.mean(), sig
