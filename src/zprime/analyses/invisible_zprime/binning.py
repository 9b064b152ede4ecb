"""Signal resolution model, mass-hypothesis grid, M_recoil^2 and theta_recoil^CM binning, search
windows.

The PRL (PRL 130, 231801 (2023), fit paragraphs) fixes the geometry of the fit:

- "The M_recoil^2 bin widths vary across the spectrum and are set to the signal M_recoil^2
  resolution", which "ranges from a minimum of 0.06 GeV^2 at 80 GeV^2 to a maximum of 0.23 GeV^2
  at 9 GeV^2";
- "We perform a squared-mass scan in steps corresponding to one unit of signal M_recoil^2
  resolution": 582 hypotheses from 0.01 to 8.5 GeV in steps of 3 to 202 MeV;
- "Each fit is performed in search windows of 20 M_recoil^2 bins centered around each hypothesis";
- "The binning in theta_recoil^CM is determined by the distribution of mu mu (gamma) events and
  depends on M_recoil^2. The number of bins varies from one (for high M_recoil^2) to five (for
  low M_recoil^2)";
- wide Z' (Gamma = 0.1 M): "We use only one-dimensional M_recoil^2 templates and enlarge the
  search windows to cover the sizable signal width".

Resolution coordinate
---------------------
Everything here is built on the *resolution coordinate* ``u(M^2) = int dM^2 / sigma(M^2)``
(:class:`ResolutionScale`): one unit of ``u`` is one resolution unit. Hypotheses sit at equally
spaced ``u`` (step ``U / n`` with ``n = round(U / step)``, so that both ends of the mass range
are hypotheses and the step differs from the requested one by less than ``1 / (2 n)``), and
every window has bins exactly one unit of ``u`` wide. The number of hypotheses is therefore
``1 + round(int dM^2 / sigma / step)`` by construction.

Units: GeV, GeV^2, radians (degrees only in the configuration).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.polynomial import Polynomial
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import ndtr

from zprime._util import read_json_object, write_json_atomic
from zprime.config import BinningConfig, ThetaBinningConfig, WideWindowConfig
from zprime.errors import ConfigError, InputError

__all__ = [
    "PRL_RESOLUTION_POINTS",
    "HypothesisGrid",
    "ResolutionModel",
    "ResolutionScale",
    "Window",
    "grid_summary",
    "hypothesis_grid",
    "hypothesis_name",
    "make_windows",
    "measure_width",
    "resolution_model_from_config",
    "theta_bin_count",
    "theta_edges",
    "wide_window",
    "windows_from_config",
]

PRL_RESOLUTION_POINTS: tuple[tuple[float, float], ...] = ((0.0, 0.0448), (9.0, 0.23), (80.0, 0.06))
"""(M^2, sigma) in GeV^2 of the fallback resolution model :meth:`ResolutionModel.prl`.

0.23 GeV^2 at 9 GeV^2 and 0.06 GeV^2 at 80 GeV^2 are the PRL's maximum and minimum (PRL 130,
231801, "The signal M_recoil^2 resolution ranges from ..."). The PRL gives no value below
9 GeV^2; 0.0448 GeV^2 at M^2 = 0 is *inferred* from its largest grid step, 202 MeV, taken as
the first step from 0.01 GeV: (0.01 + 0.202)^2 - 0.01^2 = 0.0448 GeV^2. That is below the PRL's
own quoted minimum (0.06 GeV^2), so its grid cannot be one unit of its quoted resolution near
M = 0 (docs/templates.md, ``validation/resolution.py``)."""

_THETA_MAX = math.pi
_VARIABLES = ("sqrt_m", "m", "m2")


def hypothesis_name(mass: float, width: float | None = None) -> str:
    """Name of a mass hypothesis (file stem and workspace channel): ``M2.3520`` (``_W0.2352``
    appended for a wide Z')."""
    tail = f"_W{width:.4f}" if width else ""
    return f"M{mass:.4f}{tail}"


# --------------------------------------------------------------------------- width measurement
def _sigma68(x: NDArray[np.float64]) -> float:
    lo, hi = np.percentile(x, [15.865, 84.135])
    return float(0.5 * (hi - lo))


def _truncated_gauss_nll(
    x: NDArray[np.float64], lo: float, hi: float, mu: float, sigma: float
) -> float:
    """Negative log-likelihood of ``x`` (all inside ``[lo, hi]``) for a Gaussian truncated to
    that window, up to a constant."""
    if not sigma > 0:
        return math.inf
    mass = float(ndtr((hi - mu) / sigma) - ndtr((lo - mu) / sigma))
    if not mass > 0:
        return math.inf
    z = (x - mu) / sigma
    return float(0.5 * np.dot(z, z) + x.size * math.log(sigma * mass))


def _core_fit(
    x: NDArray[np.float64], mu: float, sigma: float, n_sigma: float, label: str
) -> tuple[float, float, float]:
    """One step of the core estimator: maximum-likelihood (mu, sigma) of a Gaussian truncated to
    the fixed window ``mu +- n_sigma * sigma``, and the error on sigma from the curvature of the
    likelihood."""
    lo, hi = mu - n_sigma * sigma, mu + n_sigma * sigma
    w = x[(x >= lo) & (x <= hi)]
    if w.size < 20:
        raise InputError(f"{label}: {w.size} events in the core window, the core fit needs 20")
    # work in units of the current width so that the minimiser sees O(1) numbers
    u, ulo, uhi = (w - mu) / sigma, -n_sigma, n_sigma

    def nll(p: NDArray[np.float64]) -> float:
        return _truncated_gauss_nll(u, ulo, uhi, float(p[0]), math.exp(float(p[1])))

    res = minimize(
        nll,
        np.array([0.0, 0.0]),
        method="Nelder-Mead",
        options={"xatol": 1e-7, "fatol": 1e-9, "maxiter": 4000},
    )
    m_u, s_u = float(res.x[0]), math.exp(float(res.x[1]))
    if not (res.success and math.isfinite(s_u)):
        raise InputError(f"{label}: the Gaussian core fit failed ({res.message})")
    # error on sigma: inverse of the numerical Hessian of the NLL in (mu, sigma)
    h = 1e-3 * s_u

    def f(a: float, b: float) -> float:
        return _truncated_gauss_nll(u, ulo, uhi, a, b)

    f0 = f(m_u, s_u)
    hmm = (f(m_u + h, s_u) - 2 * f0 + f(m_u - h, s_u)) / h**2
    hss = (f(m_u, s_u + h) - 2 * f0 + f(m_u, s_u - h)) / h**2
    hms = (
        f(m_u + h, s_u + h) - f(m_u + h, s_u - h) - f(m_u - h, s_u + h) + f(m_u - h, s_u - h)
    ) / (4 * h * h)
    det = hmm * hss - hms * hms
    err_u = math.sqrt(hmm / det) if det > 0 and hmm > 0 else math.inf
    return mu + m_u * sigma, s_u * sigma, err_u * sigma


def measure_width(
    values: ArrayLike,
    *,
    estimator: str = "core",
    n_sigma: float = 2.0,
    min_events: int = 200,
    label: str = "sample",
) -> tuple[float, float]:
    """Width of a resolution peak, GeV^2, and its statistical uncertainty.

    Parameters
    ----------
    values
        Residuals ``M^2_reco - M^2_true`` of unweighted signal events (or ``M^2_reco - M^2``
        when the truth is unknown; the radiative tail then enters the 68% estimator much more
        than the core).
    estimator
        ``"core"``: the Gaussian core. An unbinned maximum-likelihood fit of a Gaussian
        truncated to the window ``+- n_sigma`` widths around the current centre, the window
        re-centred and re-scaled from the fit until the width moves by less than a tenth of its
        error (start: median and 68% half-width). A fixed point of this iteration is a Gaussian
        that describes the events within ``+- n_sigma`` of itself; tails outside the window do
        not enter, a tail inside it widens the core only by its share there. ``"sigma68"``:
        half the distance between the 15.87% and 84.13% quantiles (the detector module's
        estimator, :func:`zprime.detector.simulation.m_recoil2_resolution`).
    n_sigma
        Half-range of the core fit in units of the current width.
    min_events
        Fewest finite values accepted.
    label
        Name used in error messages (e.g. the mass).

    Raises
    ------
    InputError
        Too few finite values, or a core fit that does not converge.

    Notes
    -----
    The unbinned fit replaces a least-squares fit to a 50-bin histogram with errors
    ``sqrt(max(n, 1))`` (Neyman's chi^2), which pulls the fit towards the sparsely filled
    bins at the window edges: on pure Gaussian samples it returned 0.93 sigma for 200-500
    events and 0.99 sigma for 2500 (``tests/analyses/invisible_zprime/test_binning.py``); the
    likelihood fit is unbiased
    to 1% from 200 events.
    """
    x = np.asarray(values, dtype=float).ravel()
    x = x[np.isfinite(x)]
    if x.size < min_events:
        raise InputError(f"{label}: {x.size} events, need {min_events} to measure the resolution")
    s68 = _sigma68(x)
    if estimator == "sigma68":
        return s68, s68 / math.sqrt(2.0 * (x.size - 1))
    if estimator != "core":
        raise ConfigError(f"unknown resolution estimator {estimator!r} (core, sigma68)")
    if s68 <= 0:
        raise InputError(f"{label}: the residuals have zero spread")
    mu, sigma, err = float(np.median(x)), s68, math.inf
    for _ in range(50):
        new_mu, new_sigma, err = _core_fit(x, mu, sigma, n_sigma, label)
        moved = abs(new_sigma - sigma)
        mu, sigma = new_mu, new_sigma
        if moved < 0.1 * err or moved < 1e-9 * sigma:
            break
    if not (np.isfinite(sigma) and sigma > 0 and np.isfinite(err)):
        raise InputError(f"{label}: the Gaussian core fit gave no width")
    return sigma, err


# --------------------------------------------------------------------------- resolution model
def _to_x(m2: NDArray[np.float64], variable: str) -> NDArray[np.float64]:
    m2c = np.maximum(m2, 0.0)
    if variable == "sqrt_m":
        return m2c**0.25
    if variable == "m":
        return np.sqrt(m2c)
    return m2c


@dataclass(frozen=True)
class ResolutionModel:
    """The signal M_recoil^2 resolution sigma(M^2) as a smooth function, GeV^2.

    Two kinds:

    - ``"poly"``: a least-squares polynomial in ``variable`` (``"sqrt_m"`` = M^(1/2), ``"m"`` or
      ``"m2"``) fitted to measured (mass, width) points (:meth:`fit`). It is evaluated between
      M = 0 and the largest fitted mass and held constant above it (no extrapolation of a
      falling resolution) and for negative M^2; it is floored at half the smallest fitted width;
    - ``"linear_m2"``: linear interpolation in M^2 between points, constant outside them
      (:meth:`prl`, :meth:`from_points`).

    ``points`` keeps the (M^2, sigma, error) data it was built from; serialisable to JSON.
    """

    kind: str
    variable: str = "m2"
    coef: tuple[float, ...] = ()
    domain: tuple[float, float] = (0.0, 1.0)
    x_max: float = math.inf
    points: tuple[tuple[float, float, float], ...] = ()
    floor: float = 0.0
    source: str = ""
    chi2: float | None = None
    ndf: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("poly", "linear_m2"):
            raise ConfigError(f"unknown resolution model kind {self.kind!r} (poly, linear_m2)")
        if self.variable not in _VARIABLES:
            raise ConfigError(f"unknown resolution variable {self.variable!r} {_VARIABLES}")
        if self.kind == "poly" and not self.coef:
            raise ConfigError("a polynomial resolution model needs coefficients")
        if self.kind == "linear_m2" and len(self.points) < 1:
            raise ConfigError("a linear resolution model needs at least one point")

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        masses: ArrayLike,
        widths: ArrayLike,
        errors: ArrayLike | None = None,
        *,
        degree: int = 4,
        variable: str = "sqrt_m",
        source: str = "measured",
    ) -> ResolutionModel:
        """Least-squares polynomial fit of widths (GeV^2) measured at Z' masses (GeV).

        ``errors`` weight the fit (``1/error``; equal weights if ``None``); the degree is lowered
        to ``n_points - 1`` if there are too few points.

        Raises
        ------
        InputError
            Non-finite or non-positive masses/widths, or mismatched lengths.
        """
        m = np.asarray(masses, dtype=float).ravel()
        w = np.asarray(widths, dtype=float).ravel()
        e = np.ones_like(w) if errors is None else np.asarray(errors, dtype=float).ravel()
        if not (m.size == w.size == e.size) or m.size == 0:
            raise InputError("resolution fit: masses, widths and errors must have equal length")
        if not (np.all(np.isfinite(m)) and np.all(m > 0)):
            raise InputError("resolution fit: masses must be finite and positive")
        if not (np.all(np.isfinite(w)) and np.all(w > 0) and np.all(e > 0)):
            raise InputError("resolution fit: widths and errors must be finite and positive")
        if variable not in _VARIABLES:
            raise ConfigError(f"unknown resolution variable {variable!r} {_VARIABLES}")
        order = np.argsort(m)
        m, w, e = m[order], w[order], e[order]
        x = _to_x(m * m, variable)
        deg = int(min(degree, m.size - 1))
        poly = Polynomial.fit(x, w, deg, w=1.0 / e)
        resid = (w - poly(x)) / e
        ndf = int(m.size - deg - 1)
        return cls(
            kind="poly",
            variable=variable,
            coef=tuple(float(c) for c in poly.coef),
            domain=(float(poly.domain[0]), float(poly.domain[1])),
            x_max=float(x.max()),
            points=tuple(
                (float(a * a), float(b), float(c)) for a, b, c in zip(m, w, e, strict=True)
            ),
            floor=float(0.5 * w.min()),
            source=source,
            chi2=float(np.sum(resid**2)) if errors is not None else None,
            ndf=ndf if errors is not None else None,
        )

    @classmethod
    def from_points(
        cls, m2: ArrayLike, sigma: ArrayLike, *, source: str = "points"
    ) -> ResolutionModel:
        """Piecewise-linear sigma(M^2) through (M^2, sigma) points, constant beyond the ends."""
        a = np.asarray(m2, dtype=float).ravel()
        b = np.asarray(sigma, dtype=float).ravel()
        if a.size != b.size or a.size == 0 or not np.all(np.isfinite(a)) or np.any(~(b > 0)):
            raise InputError("resolution points: need equal-length finite M^2 and positive sigma")
        order = np.argsort(a)
        pts = tuple((float(p), float(q), 0.0) for p, q in zip(a[order], b[order], strict=True))
        return cls(kind="linear_m2", points=pts, floor=float(b.min()), source=source)

    @classmethod
    def prl(cls) -> ResolutionModel:
        """Fallback from the PRL's quoted values (:data:`PRL_RESOLUTION_POINTS`)."""
        m2, s = zip(*PRL_RESOLUTION_POINTS, strict=True)
        return cls.from_points(m2, s, source="prl")

    # -- evaluation --------------------------------------------------------------------------
    def sigma(self, m2: ArrayLike) -> Any:
        """Resolution sigma(M^2) in GeV^2 (scalar in, float out; array in, array out)."""
        a = np.asarray(m2, dtype=float)
        if self.kind == "linear_m2":
            px = np.array([p[0] for p in self.points])
            py = np.array([p[1] for p in self.points])
            out = np.interp(a, px, py)
        else:
            x = np.minimum(_to_x(a, self.variable), self.x_max)
            poly = Polynomial(np.asarray(self.coef), domain=np.asarray(self.domain))
            out = np.maximum(poly(x), self.floor)
        return float(out) if out.ndim == 0 else out

    __call__ = sigma

    # -- serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON description (inverse: :meth:`from_dict`)."""
        return {
            "kind": self.kind,
            "variable": self.variable,
            "coef": list(self.coef),
            "domain": list(self.domain),
            "x_max": self.x_max if math.isfinite(self.x_max) else None,
            "points": [list(p) for p in self.points],
            "floor": self.floor,
            "source": self.source,
            "chi2": self.chi2,
            "ndf": self.ndf,
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, where: str = "resolution model"
    ) -> ResolutionModel:
        """Rebuild from :meth:`to_dict` output.

        Raises
        ------
        InputError
            Missing or malformed fields, naming ``where``.
        """
        try:
            x_max = data.get("x_max")
            return cls(
                kind=str(data["kind"]),
                variable=str(data.get("variable", "m2")),
                coef=tuple(float(c) for c in data.get("coef", ())),
                domain=tuple(float(d) for d in data.get("domain", (0.0, 1.0))),  # type: ignore[arg-type]
                x_max=math.inf if x_max is None else float(x_max),
                points=tuple(tuple(float(v) for v in p) for p in data.get("points", ())),  # type: ignore[misc]
                floor=float(data.get("floor", 0.0)),
                source=str(data.get("source", "")),
                chi2=None if data.get("chi2") is None else float(data["chi2"]),
                ndf=None if data.get("ndf") is None else int(data["ndf"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{where}: malformed resolution model ({exc})") from None

    def save(self, path: str | Path) -> Path:
        """Write the model as JSON, atomically."""
        return write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> ResolutionModel:
        """Read a model written by :meth:`save`.

        Raises
        ------
        InputError
            Missing or unreadable file.
        """
        data = read_json_object(path, "resolution model")
        return cls.from_dict(data, where=str(path))


def resolution_model_from_config(
    cfg: BinningConfig,
    measured: Mapping[float, ArrayLike] | None = None,
) -> ResolutionModel:
    """The resolution model the configuration asks for.

    Parameters
    ----------
    cfg
        The ``binning`` configuration (``resolution.source``).
    measured
        For ``source: measured``: per simulated Z' mass (GeV), the residuals
        ``M^2_reco - M^2_true`` of its (selected) signal events.

    Raises
    ------
    ConfigError
        ``measured`` without samples, or ``file`` without a file name.
    """
    rc = cfg.resolution
    if rc.source == "prl":
        return ResolutionModel.prl()
    if rc.source == "file":
        if not rc.file:
            raise ConfigError("config field 'binning.resolution.file': needed for source 'file'")
        return ResolutionModel.load(rc.file)
    if not measured:
        raise ConfigError(
            "config field 'binning.resolution.source': 'measured' needs simulated signal samples"
        )
    masses, widths, errors, skipped = [], [], [], []
    for mass, resid in sorted(measured.items()):
        if np.size(resid) < rc.min_events and len(measured) > 2:
            # too few selected events at this mass (e.g. a small or tightly selected sample):
            # the smooth model is fitted to the other masses; recorded in the model's source
            skipped.append(f"{mass:g}")
            continue
        w, e = measure_width(
            resid, estimator=rc.estimator, min_events=rc.min_events, label=f"signal M={mass:g} GeV"
        )
        masses.append(mass)
        widths.append(w)
        errors.append(e)
    if len(masses) < 2:
        raise InputError(
            f"binning.resolution: {len(masses)} simulated masses with at least "
            f"{rc.min_events} selected signal events, need 2"
        )
    degree = min(rc.degree, len(masses) - 1)  # fewer masses than the polynomial needs
    note = f"; skipped M = {', '.join(skipped)} GeV (< {rc.min_events} events)" if skipped else ""
    if degree < rc.degree:
        note += f"; degree {degree} instead of {rc.degree}"
    return ResolutionModel.fit(
        masses,
        widths,
        errors,
        degree=degree,
        variable=rc.variable,
        source=f"measured ({rc.estimator}){note}",
    )


# --------------------------------------------------------------------------- resolution coordinate
class ResolutionScale:
    """The resolution coordinate ``u(M^2) = int_{origin}^{M^2} dx / sigma(x)``.

    Tabulated with the trapezoidal rule on ``n`` equidistant M^2 points over ``[m2_lo, m2_hi]``
    (spacing ~1e-3 GeV^2 by default, far below any sigma) plus 4096 points geometrically spaced
    in (0, 1] GeV^2 (where sigma may rise like M^(1/2)), inverted by linear interpolation;
    beyond the table ``sigma`` is taken constant at its end values.
    """

    def __init__(
        self,
        model: ResolutionModel,
        m2_lo: float = -2.0,
        m2_hi: float = 100.0,
        *,
        origin_m2: float = 0.0,
        n: int = 1 << 17,
    ) -> None:
        if not m2_lo < m2_hi:
            raise ConfigError(f"resolution scale: range [{m2_lo}, {m2_hi}] must increase")
        self.model = model
        self.m2_lo, self.m2_hi = float(m2_lo), float(m2_hi)
        x = np.linspace(self.m2_lo, self.m2_hi, n)
        if self.m2_lo < 1.0 and self.m2_hi > 0.0:  # sigma may vary like M^(1/2) near M = 0
            near0 = np.geomspace(1e-10, 1.0, 4096)
            x = np.unique(np.concatenate([x, near0[(near0 > self.m2_lo) & (near0 < self.m2_hi)]]))
        self._x = x
        inv = 1.0 / np.asarray(model.sigma(self._x))
        u = np.concatenate([[0.0], np.cumsum(0.5 * (inv[1:] + inv[:-1]) * np.diff(self._x))])
        self._s_lo = float(model.sigma(self.m2_lo))
        self._s_hi = float(model.sigma(self.m2_hi))
        self._u = u - float(np.interp(origin_m2, self._x, u))

    @property
    def u_lo(self) -> float:
        """u at the lower end of the table."""
        return float(self._u[0])

    @property
    def u_hi(self) -> float:
        """u at the upper end of the table."""
        return float(self._u[-1])

    def sigma(self, m2: ArrayLike) -> Any:
        """sigma(M^2) of the model, GeV^2."""
        return self.model.sigma(m2)

    def u(self, m2: ArrayLike) -> Any:
        """Resolution coordinate of M^2 (GeV^2)."""
        a = np.asarray(m2, dtype=float)
        out = np.interp(a, self._x, self._u)
        out = np.where(a < self.m2_lo, self._u[0] + (a - self.m2_lo) / self._s_lo, out)
        out = np.where(a > self.m2_hi, self._u[-1] + (a - self.m2_hi) / self._s_hi, out)
        return float(out) if out.ndim == 0 else out

    def m2(self, u: ArrayLike) -> Any:
        """Inverse of :meth:`u`: M^2 (GeV^2) at resolution coordinate ``u``."""
        a = np.asarray(u, dtype=float)
        out = np.interp(a, self._u, self._x)
        out = np.where(a < self._u[0], self.m2_lo + (a - self._u[0]) * self._s_lo, out)
        out = np.where(a > self._u[-1], self.m2_hi + (a - self._u[-1]) * self._s_hi, out)
        return float(out) if out.ndim == 0 else out


# --------------------------------------------------------------------------- hypothesis grid
@dataclass(frozen=True)
class HypothesisGrid:
    """Mass hypotheses equally spaced in the resolution coordinate."""

    masses: NDArray[np.float64]
    """Z' masses, GeV."""
    u: NDArray[np.float64]
    """Their resolution coordinates."""
    step: float
    """Actual step in resolution units (``U / (n - 1)``)."""
    integral: float
    """``U = int dM^2 / sigma`` from the first to the last mass."""

    @property
    def m2(self) -> NDArray[np.float64]:
        """Squared masses, GeV^2."""
        return self.masses**2

    @property
    def names(self) -> list[str]:
        """Hypothesis names (:func:`hypothesis_name`)."""
        return [hypothesis_name(float(m)) for m in self.masses]

    def __len__(self) -> int:
        return int(self.masses.size)


def hypothesis_grid(
    scale: ResolutionScale,
    mass_min: float = 0.01,
    mass_max: float = 8.5,
    step: float = 1.0,
) -> HypothesisGrid:
    """Hypotheses from ``mass_min`` to ``mass_max`` (both included) in steps of ``step``
    resolution units in M^2 (PRL: 0.01 to 8.5 GeV, one unit).

    The ``n = round(U / step)`` steps are each ``U / n`` units (within ``1 / (2n)`` of ``step``),
    so the count is ``1 + round(U / step)`` with ``U = int_{mass_min^2}^{mass_max^2} dM^2 /
    sigma``. Near M = 0 a unit of M^2 is a large step in M: from 0.01 GeV the first step is
    ``sqrt(1e-4 + sigma(0)) - 0.01`` GeV.
    """
    if not 0 < mass_min < mass_max:
        raise ConfigError(
            f"hypothesis grid: need 0 < mass_min < mass_max, got {mass_min}, {mass_max}"
        )
    if not step > 0:
        raise ConfigError(f"hypothesis grid: step must be positive, got {step}")
    u0, u1 = scale.u(mass_min**2), scale.u(mass_max**2)
    total = float(u1 - u0)
    n = max(1, round(total / step))
    u = u0 + np.arange(n + 1) * (total / n)
    m2 = np.asarray(scale.m2(u))
    m2[0], m2[-1] = mass_min**2, mass_max**2
    return HypothesisGrid(masses=np.sqrt(np.maximum(m2, 0.0)), u=u, step=total / n, integral=total)


# --------------------------------------------------------------------------- windows
@dataclass(frozen=True)
class Window:
    """A search window: M_recoil^2 bins and theta_recoil^CM bins around one hypothesis."""

    index: int
    """Position in the hypothesis grid."""
    mass_gev: float
    """Hypothesis mass, GeV."""
    m2_edges: NDArray[np.float64]
    """M_recoil^2 bin edges, GeV^2 (``n_m2 + 1``)."""
    theta_edges: NDArray[np.float64] = field(default_factory=lambda: np.array([0.0, _THETA_MAX]))
    """theta_recoil^CM bin edges, rad (``n_theta + 1``)."""
    width_gev: float | None = None
    """Z' width of a wide-Z' window (``None``: negligible width)."""
    shift: float = 0.0
    """How far (resolution units) the window was moved to stay inside the M^2 range."""

    @property
    def name(self) -> str:
        """The hypothesis name (:func:`hypothesis_name`)."""
        return hypothesis_name(self.mass_gev, self.width_gev)

    @property
    def m2_gev2(self) -> float:
        """Hypothesis M^2, GeV^2."""
        return self.mass_gev**2

    @property
    def shape(self) -> tuple[int, int]:
        """(M^2 bins, theta bins)."""
        return (self.m2_edges.size - 1, self.theta_edges.size - 1)

    @property
    def n_bins(self) -> int:
        """Bins of the flattened 2D window."""
        a, b = self.shape
        return a * b

    def with_theta(self, edges: ArrayLike) -> Window:
        """The same window with other theta edges (rad)."""
        return replace(self, theta_edges=np.asarray(edges, dtype=float))


def make_windows(
    grid: HypothesisGrid,
    scale: ResolutionScale,
    n_bins: int = 20,
    m2_range: tuple[float, float] | None = None,
) -> list[Window]:
    """One window per hypothesis: ``n_bins`` M^2 bins, each one resolution unit wide, centred on
    the hypothesis (edges at ``u_h + k - n_bins/2``, so with an even count the hypothesis is the
    middle edge, PRL: "20 bins centered around each hypothesis").

    At the ends of ``m2_range`` (default: the scale's table) a window that would stick out is
    shifted inwards, keeping its ``n_bins`` bins (recorded in :attr:`Window.shift`); if the range
    holds fewer than ``n_bins`` units the window is the whole range. At the low end of the
    default grid the windows extend below M^2 = 0, where M_recoil^2 lives for signal smeared by
    the resolution. The theta edges are left at (0, pi); see :func:`theta_edges`.
    """
    if n_bins < 1:
        raise ConfigError(f"search windows: n_bins must be positive, got {n_bins}")
    lo, hi = (scale.m2_lo, scale.m2_hi) if m2_range is None else m2_range
    ulo, uhi = scale.u(lo), scale.u(hi)
    out = []
    for i, (mass, uh) in enumerate(zip(grid.masses, grid.u, strict=True)):
        start = uh - 0.5 * n_bins
        shift = 0.0
        if uhi - ulo <= n_bins:
            edges_u = np.linspace(ulo, uhi, n_bins + 1)
            shift = float("nan")
        else:
            if start < ulo:
                shift = ulo - start
            elif start + n_bins > uhi:
                shift = uhi - (start + n_bins)
            edges_u = start + shift + np.arange(n_bins + 1, dtype=float)
        out.append(
            Window(
                index=i, mass_gev=float(mass), m2_edges=np.asarray(scale.m2(edges_u)), shift=shift
            )
        )
    return out


def wide_window(
    index: int,
    mass: float,
    scale: ResolutionScale,
    cfg: WideWindowConfig | None = None,
    *,
    min_bins: int = 20,
    m2_range: tuple[float, float] | None = None,
) -> Window:
    """Search window of a wide Z' (Gamma = ``width_over_mass * M``; 1D, one theta bin).

    The relativistic Breit-Wigner in M^2 has half width at half maximum ``M Gamma``; the window
    is ``M^2 +- max(min_bins/2 * sigma(M^2), n_gamma * M Gamma)`` clipped to ``m2_range``, cut
    into ``round(Delta u)`` bins of one resolution unit, but at least ``min_bins`` and at most
    ``max_bins`` (then the bins are wider than sigma; equal widths in ``u``).
    """
    cfg = cfg or WideWindowConfig()
    lo_r, hi_r = (scale.m2_lo, scale.m2_hi) if m2_range is None else m2_range
    width = cfg.width_over_mass * mass
    m2 = mass * mass
    half = max(0.5 * min_bins * float(scale.sigma(m2)), cfg.n_gamma * mass * width)
    lo, hi = max(m2 - half, lo_r), min(m2 + half, hi_r)
    ulo, uhi = scale.u(lo), scale.u(hi)
    n = int(np.clip(round(uhi - ulo), min_bins, cfg.max_bins))
    edges = np.asarray(scale.m2(np.linspace(ulo, uhi, n + 1)))
    edges[0], edges[-1] = lo, hi
    return Window(index=index, mass_gev=float(mass), m2_edges=edges, width_gev=float(width))


# --------------------------------------------------------------------------- theta binning
def theta_bin_count(m2: float, cfg: ThetaBinningConfig) -> int:
    """Configured theta bins for a hypothesis at ``m2`` (first range with ``m2 < m2_max``; the
    last range for anything above)."""
    for r in cfg.ranges:
        if m2 < r.m2_max_gev2:
            return r.n_bins
    return cfg.ranges[-1].n_bins


def _theta_range_cfg(m2: float, cfg: ThetaBinningConfig) -> Any:
    for r in cfg.ranges:
        if m2 < r.m2_max_gev2:
            return r
    return cfg.ranges[-1]


def theta_edges(
    m2: float,
    cfg: ThetaBinningConfig,
    theta: ArrayLike | None = None,
    weight: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """theta_recoil^CM edges (rad) of the window of a hypothesis at ``m2`` (GeV^2).

    ``fixed``: the range's ``edges_deg`` (or ``n_bins`` equal bins in [0, 180] deg).
    ``quantile``: outer edges 0 and pi; inner edges at the weighted quantiles ``k / n`` of
    ``theta`` (the background events that fall in the window, weights ``weight``), so that each
    bin holds the same expected background. The count ``n`` is the configured one, reduced until
    every bin holds ``min_events_per_bin`` MC events (down to one bin; also without events).
    """
    rc = _theta_range_cfg(m2, cfg)
    n = rc.n_bins
    if cfg.method == "fixed":
        if rc.edges_deg is not None:
            return np.radians(np.asarray(rc.edges_deg, dtype=float))
        return np.linspace(0.0, _THETA_MAX, n + 1)
    if theta is None or n == 1:
        return np.array([0.0, _THETA_MAX])
    t = np.asarray(theta, dtype=float).ravel()
    w = np.ones_like(t) if weight is None else np.asarray(weight, dtype=float).ravel()
    ok = (w > 0) & np.isfinite(t)
    t, w = t[ok], w[ok]
    n = min(n, t.size // cfg.min_events_per_bin)
    if n <= 1:
        return np.array([0.0, _THETA_MAX])
    inner = np.quantile(t, np.arange(1, n) / n, weights=w, method="inverted_cdf")
    return np.unique(np.concatenate([[0.0], np.clip(inner, 0.0, _THETA_MAX), [_THETA_MAX]]))


def windows_from_config(
    cfg: BinningConfig, model: ResolutionModel
) -> tuple[ResolutionScale, HypothesisGrid, list[Window]]:
    """Scale, hypothesis grid and (narrow) windows of a ``binning`` configuration."""
    lo, hi = cfg.m2_range_gev2
    scale = ResolutionScale(model, lo, hi)
    grid = hypothesis_grid(scale, cfg.mass_min_gev, cfg.mass_max_gev, cfg.step_resolution_units)
    return scale, grid, make_windows(grid, scale, cfg.window_bins, (lo, hi))


def grid_summary(grid: HypothesisGrid) -> dict[str, float]:
    """Count and step range (MeV) of a grid, for the docs and reports."""
    dm = np.diff(grid.masses) * 1e3
    return {
        "count": len(grid),
        "integral": grid.integral,
        "step_units": grid.step,
        "min_step_mev": float(dm.min()) if dm.size else 0.0,
        "max_step_mev": float(dm.max()) if dm.size else 0.0,
    }
