"""A pyhf JSON workspace read into flat arrays for the batched engine.

The model class is pyhf 0.7.6's HistFactory (``pyhf.pdf``, ``pyhf.modifiers``): any number of
channels and samples, the modifiers ``normfactor``, ``lumi``, ``normsys`` (interpolation code4
or code1), ``histosys`` (code4p or code0), ``staterror``, ``shapesys`` and ``shapefactor``,
shared by name across samples and channels (and a ``normsys`` and a ``histosys`` may share one
parameter), with the measurement's parameter configuration (inits, bounds, fixed flags,
auxdata, sigmas). Channels are taken in pyhf's (sorted) order and their bins concatenated into
one flat bin axis; the engine's "samples" are the (channel, sample) pairs. Expected yield of
sample ``s`` in flat bin ``b``::

    lambda_sb = F_s * Gamma_sb * (nominal_sb + sum_h delta_hsb(alpha_h))

with ``F_s`` the product of the normfactors, lumi and normsys factors on ``s`` (and of the
per-bin factors shared across channels, see below), ``Gamma_sb`` the product of the per-bin
factors (staterror, shapesys, shapefactor), and ``delta`` the histosys deltas (``interp``).

Constraints (``CON_*``): Gaussian for lumi, normsys, histosys and staterror (auxdata 0 / 1,
sigma 1 or the staterror's relative uncertainty), Poisson for shapesys
(``Pois(a | gamma tau)``, ``tau = (nominal / sigma)^2`` of the first sample carrying it, auxdata
``a = tau``; bins with zero nominal or zero sigma are fixed at 1 with ``tau = 1``, as pyhf), none
for normfactor and shapefactor.

Parameters are split by how they couple:

- *global* parameters act on many bins: normfactors (the POI among them), lumi, normsys,
  histosys whose variations touch more than one bin, and every component of a per-bin set shared
  across channels (a shapefactor in several channels: component ``i`` acts on bin ``i`` of each).
  Such a bin-dependent factor is made a sample-level factor by splitting the (channel, sample)
  pairs it acts on into sub-samples by bins, so the engine keeps one factor per sample;
- *local* parameters act on one flat bin only: each component of a staterror, shapesys or
  shapefactor set (one "slot" per set; sets of different channels share a slot) and every
  histosys whose variations touch a single bin. They sit in ``(bin, slot)`` arrays: histosys
  slots are grouped by the set of samples they touch, then the per-bin factor slots;
- *decoupled* parameters do not change any yield (a histosys with ``hi == lo == nominal``);
  their best value is their auxiliary datum clipped to the bounds.

Anything outside the class (a modifier type other than the seven, a parameter shared by two
modifier types other than normsys + histosys, a shapesys shared across channels, which pyhf
cannot build either), negative or non-finite data, or inconsistent lengths is refused with a
one-line :class:`~zprime.errors.InputError` naming the channel, sample or modifier;
:func:`validate_workspace` checks pyhf's JSON schema.

Length: one translation: every modifier type's parameters, constraints and layout are read in
one pass over the workspace into the same flat arrays, and splitting it would spread pyhf's
semantics over several files.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from zprime.errors import InputError
from zprime.stats.interp import code4_coefficients

__all__ = ["CompiledModel", "Params", "compile_workspace", "stack_models", "validate_workspace"]

Array = NDArray[np.float64]

SUPPORTED_MODIFIERS = (
    "normfactor",
    "lumi",
    "normsys",
    "histosys",
    "staterror",
    "shapesys",
    "shapefactor",
)
KIND_FACTOR, KIND_NORMSYS, KIND_HISTOSYS = 0, 1, 2
# constraint types: none (normfactor, shapefactor), Gaussian, Poisson (shapesys)
CON_NONE, CON_GAUSS, CON_POISSON = 0, 1, 2


@dataclass
class Params:
    """Parameter values of a batch of fits: globals ``g`` (N, G), locals ``l`` (N, B, K),
    decoupled ``d`` (N, D)."""

    g: Array
    l: Array  # noqa: E741
    d: Array

    def copy(self) -> Params:
        return Params(self.g.copy(), self.l.copy(), self.d.copy())

    def take(self, idx: NDArray[np.intp]) -> Params:
        return Params(self.g[idx], self.l[idx], self.d[idx])

    def put(self, idx: NDArray[np.intp], other: Params) -> None:
        self.g[idx] = other.g
        self.l[idx] = other.l
        self.d[idx] = other.d

    @property
    def n(self) -> int:
        return self.g.shape[0]


@dataclass
class CompiledModel:
    """Arrays of one or several (``W``) workspaces with the same structure.

    Arrays with a leading ``W`` axis may differ between the stacked workspaces; the others are
    shared. ``S`` samples, ``B`` bins, ``G`` globals, ``K = Kh + Kg`` local slots.
    """

    names: list[str]
    samples: list[str]
    nbins: int
    nominal: Array  # (W, S, B)
    observed: Array  # (W, B)
    poi_name: str
    poi_index: int
    # global parameters
    g_names: list[str]
    g_type: list[str]
    g_kind: NDArray[np.int_]  # (G,)
    g_mask: NDArray[np.bool_]  # (G, S)
    g_init: Array  # (W, G)
    g_lo: Array  # (W, G)
    g_hi: Array  # (W, G)
    g_fixed: NDArray[np.bool_]  # (W, G)
    g_constrained: NDArray[np.bool_]  # (G,)
    g_aux: Array  # (W, G)
    g_sigma: Array  # (W, G)
    ns_index: NDArray[np.intp]  # (Gn,)
    ns_hi: Array  # (W, Gn, S)
    ns_lo: Array  # (W, Gn, S)
    ns_coef: Array  # (W, Gn, S, 6)
    gh_index: NDArray[np.intp]  # (Gh,)
    gh_up: Array  # (W, Gh, S, B)
    gh_dn: Array  # (W, Gh, S, B)
    # local parameters
    kh: int
    kg: int
    lh_up: Array  # (W, S, B, Kh)
    lh_dn: Array  # (W, S, B, Kh)
    lh_sig: NDArray[np.bool_]  # (Kh, S)
    st_mask: NDArray[np.bool_]  # (Kg, S)
    st_names: list[str]
    l_present: NDArray[np.bool_]  # (W, B, K)
    l_init: Array  # (W, B, K)
    l_lo: Array  # (W, B, K)
    l_hi: Array  # (W, B, K)
    l_fixed: NDArray[np.bool_]  # (W, B, K)
    l_aux: Array  # (W, B, K)
    l_sigma: Array  # (W, B, K)
    l_names: list[dict[str, tuple[int, int]]]  # per W: histosys name -> (bin, slot)
    # decoupled parameters
    d_names: list[list[str]]  # per W
    d_init: Array  # (W, D)
    d_lo: Array
    d_hi: Array
    d_fixed: NDArray[np.bool_]
    d_aux: Array
    d_sigma: Array
    histosys_code: str = "code4p"
    normsys_code: str = "code4"
    measurement: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # constraint types and Poisson scale factors (shapesys: tau = (nominal / sigma)^2)
    g_ctype: NDArray[np.int8] | None = None  # (G,) CON_*
    g_tau: Array | None = None  # (W, G)
    l_ctype: NDArray[np.int8] | None = None  # (W, B, K)
    l_tau: Array | None = None  # (W, B, K)
    # per-bin parameter sets: name -> components as (0, g, 0) global or (1, b, k) local
    vec_layout: dict[str, list[tuple[int, int, int]]] = field(default_factory=dict)
    channels: list[str] = field(default_factory=list)
    channel_slices: dict[str, tuple[int, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        w = self.nominal.shape[0]
        if self.g_ctype is None:
            self.g_ctype = np.where(self.g_constrained, CON_GAUSS, CON_NONE).astype(np.int8)
        if self.g_tau is None:
            self.g_tau = np.ones((w, len(self.g_names)))
        if self.l_ctype is None:
            self.l_ctype = np.where(self.l_present, CON_GAUSS, CON_NONE).astype(np.int8)
        if self.l_tau is None:
            self.l_tau = np.ones(self.l_present.shape)
        if not self.channels:
            self.channels = [self.names[0]]
            self.channel_slices = {self.names[0]: (0, self.nbins)}

    @property
    def has_poisson(self) -> bool:
        """Whether any parameter has a Poisson (shapesys) constraint."""
        return bool(np.any(self.g_ctype == CON_POISSON) or np.any(self.l_ctype == CON_POISSON))

    @property
    def gaussian_constrained_bins(self) -> bool:
        """Whether every per-bin parameter has a Gaussian constraint (no shapesys, no
        single-bin shapefactor): what the Bayesian integration and the saturated goodness of
        fit assume of them."""
        free_local = np.any(self.l_present & (self.l_ctype == CON_NONE))
        return not (self.has_poisson or bool(free_local))

    # ------------------------------------------------------------------ sizes
    @property
    def n_workspaces(self) -> int:
        return self.nominal.shape[0]

    @property
    def n_samples(self) -> int:
        return len(self.samples)

    @property
    def n_globals(self) -> int:
        return len(self.g_names)

    @property
    def n_slots(self) -> int:
        return self.kh + self.kg

    @property
    def n_decoupled(self) -> int:
        return self.d_init.shape[1]

    @property
    def name(self) -> str:
        return self.names[0] if len(self.names) == 1 else f"{self.names[0]}..{self.names[-1]}"

    def n_parameters(self, w: int = 0) -> int:
        """Number of model parameters of workspace ``w`` (as ``pyhf inspect`` counts them)."""
        return int(self.n_globals + self.l_present[w].sum() + self.d_init.shape[1])

    def constraint_constant(self) -> Array:
        """Sum over Gaussian-constrained parameters of ``-log(sigma sqrt(2 pi))`` per workspace
        (W,). The Poisson constants depend on the auxiliary data (``engine.twice_nll``)."""
        half_log_2pi = 0.5 * math.log(2 * math.pi)
        cg = np.where((self.g_ctype == CON_GAUSS)[None, :], -np.log(self.g_sigma) - half_log_2pi, 0)
        lg = self.l_present & (self.l_ctype == CON_GAUSS)
        cl = np.where(lg, -np.log(self.l_sigma) - half_log_2pi, 0.0)
        cd = -np.log(self.d_sigma) - half_log_2pi
        return cg.sum(axis=1) + cl.sum(axis=(1, 2)) + cd.sum(axis=1)

    # ------------------------------------------------------------------ parameters
    def init_params(self, n: int | None = None, w: NDArray[np.intp] | None = None) -> Params:
        """Initial parameter values (the measurement's inits) for ``n`` fits of workspace ``w``."""
        widx = self._widx(n, w)
        return Params(self.g_init[widx].copy(), self.l_init[widx].copy(), self.d_init[widx].copy())

    def nominal_aux(self, n: int | None = None, w: NDArray[np.intp] | None = None) -> Params:
        """The auxiliary data of the measurement (``auxdata``) laid out like the parameters."""
        widx = self._widx(n, w)
        return Params(self.g_aux[widx].copy(), self.l_aux[widx].copy(), self.d_aux[widx].copy())

    def asimov_aux(self, params: Params, w: NDArray[np.intp] | None = None) -> Params:
        """Auxiliary data that the parameters ``params`` reproduce exactly (pyhf's
        ``expected_auxdata``): the value for Gaussian constraints, ``gamma * tau`` for Poisson."""
        widx = self._widx(params.n, w)
        g = np.where(self.g_ctype == CON_POISSON, params.g * self.g_tau[widx], params.g)
        lp = self.l_ctype[widx] == CON_POISSON
        l_ = np.where(lp, params.l * self.l_tau[widx], params.l)
        return Params(g, l_, params.d.copy())

    def _widx(self, n: int | None, w: NDArray[np.intp] | None) -> NDArray[np.intp]:
        if w is not None:
            return np.asarray(w, dtype=np.intp)
        if n is None:
            n = self.n_workspaces
        if self.n_workspaces == 1:
            return np.zeros(n, dtype=np.intp)
        if n != self.n_workspaces:
            raise ValueError("give the workspace index of every fit for a stacked model")
        return np.arange(n, dtype=np.intp)

    def params_to_dict(self, p: Params, i: int = 0, w: int = 0) -> dict[str, Any]:
        """Values of fit ``i`` keyed by pyhf parameter name (staterror as per-bin lists)."""
        out: dict[str, Any] = {}
        for g, nm in enumerate(self.g_names):
            out[nm] = float(p.g[i, g])
        for nm, (b, k) in self.l_names[w].items():
            out[nm] = float(p.l[i, b, k])
        for nm, comps in self.vec_layout.items():
            out[nm] = [
                float(p.g[i, a]) if kind == 0 else float(p.l[i, a, k]) for kind, a, k in comps
            ]
        for j, nm in enumerate(self.d_names[w]):
            out[nm] = float(p.d[i, j])
        return out

    def params_from_dict(self, values: Mapping[str, Any], w: int = 0) -> Params:
        """One set of parameters from a name -> value mapping (missing names keep the inits)."""
        p = self.init_params(1, np.array([w]))
        for g, nm in enumerate(self.g_names):
            if nm in values:
                p.g[0, g] = float(values[nm])
        for nm, (b, k) in self.l_names[w].items():
            if nm in values:
                p.l[0, b, k] = float(values[nm])
        for nm, comps in self.vec_layout.items():
            if nm in values:
                vals = np.broadcast_to(np.asarray(values[nm], dtype=float), (len(comps),))
                for (kind, a, k), v in zip(comps, vals, strict=True):
                    if kind == 0:
                        p.g[0, a] = v
                    else:
                        p.l[0, a, k] = v
        for j, nm in enumerate(self.d_names[w]):
            if nm in values:
                p.d[0, j] = float(values[nm])
        return p

    def take(self, w: Sequence[int]) -> CompiledModel:
        """The sub-model of workspaces ``w`` (keeps the structure)."""
        idx = np.asarray(w, dtype=np.intp)
        kw: dict[str, Any] = {}
        for f in _W_ARRAYS:
            kw[f] = getattr(self, f)[idx]
        kw["names"] = [self.names[i] for i in idx]
        kw["l_names"] = [self.l_names[i] for i in idx]
        kw["d_names"] = [self.d_names[i] for i in idx]
        return replace(self, **kw)


_W_ARRAYS = (
    "nominal",
    "observed",
    "g_init",
    "g_lo",
    "g_hi",
    "g_fixed",
    "g_aux",
    "g_sigma",
    "ns_hi",
    "ns_lo",
    "ns_coef",
    "gh_up",
    "gh_dn",
    "lh_up",
    "lh_dn",
    "l_present",
    "l_init",
    "l_lo",
    "l_hi",
    "l_fixed",
    "l_aux",
    "l_sigma",
    "d_init",
    "d_lo",
    "d_hi",
    "d_fixed",
    "d_aux",
    "d_sigma",
    "g_tau",
    "l_ctype",
    "l_tau",
)


def _fail(name: str, msg: str) -> InputError:
    return InputError(f"workspace {name}: {msg}")


def _user_configs(measurement: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for par in measurement.get("config", {}).get("parameters", []):
        out[par["name"]] = par
    return out


def _scalar_config(
    wsname: str,
    pname: str,
    cfg: Mapping[str, Any],
    init: float | None,
    bounds: tuple[float, float] | None,
    aux: float | None,
    sigma: float | None,
) -> tuple[float, tuple[float, float], bool, float | None, float | None]:
    """Apply a measurement's parameter configuration to a scalar parameter (pyhf semantics)."""
    if "inits" in cfg:
        init = float(cfg["inits"][0])
    if "bounds" in cfg:
        bounds = (float(cfg["bounds"][0][0]), float(cfg["bounds"][0][1]))
    if "auxdata" in cfg:
        aux = float(cfg["auxdata"][0])
    if "sigmas" in cfg:
        sigma = float(cfg["sigmas"][0])
    fixed = bool(cfg.get("fixed", False))
    if init is None or bounds is None:
        raise _fail(wsname, f"parameter {pname!r} needs inits and bounds in the measurement")
    return init, bounds, fixed, aux, sigma


def validate_workspace(spec: Mapping[str, Any], name: str | None = None) -> None:
    """Validate ``spec`` against pyhf's workspace schema (``workspace.json``, version 1.0.0).

    Raises
    ------
    InputError
        One line naming where the workspace breaks the schema: the channel, sample and
        modifier when the error lies inside one (a modifier type unknown to HistFactory is
        called outside the model class), else the JSON path.
    """
    import pyhf  # the reference implementation owns the schema

    label = name or _spec_label(spec)
    try:
        pyhf.schema.validate(dict(spec), "workspace.json")
    except pyhf.exceptions.InvalidSpecification as err:
        path = str(getattr(err, "path", "") or "")
        exc = getattr(err, "exc_info", None)
        what = str(exc[1].message) if exc else str(err).splitlines()[0]
        raise _fail(label, _schema_where(spec, path, what)) from None


def _schema_where(spec: Mapping[str, Any], path: str, what: str) -> str:
    """A one-line description of a schema error at ``path`` (``channels[1].samples[0]...``)."""
    idx = [int(x) for x in re.findall(r"\[(\d+)\]", path)]
    where = f"at {path}" if path else "at the top level"
    try:
        if path.startswith("channels[") and idx:
            ch = spec["channels"][idx[0]]
            where = f"channel {ch.get('name')!r}"
            if ".samples[" in path and len(idx) > 1:
                sm = ch["samples"][idx[1]]
                where += f", sample {sm.get('name')!r}"
                if ".modifiers[" in path and len(idx) > 2:
                    mod = sm["modifiers"][idx[2]]
                    mtype = mod.get("type")
                    where += f", modifier {mod.get('name')!r}"
                    if mtype not in SUPPORTED_MODIFIERS:
                        return (
                            f"{where} has type {mtype!r}, outside the HistFactory model class "
                            f"({', '.join(SUPPORTED_MODIFIERS)}); pyhf's schema refuses it"
                        )
                    where += f" ({mtype})"
    except (KeyError, IndexError, TypeError, AttributeError):
        pass
    what = " ".join(what.split())
    if len(what) > 160:
        what = what[:157] + "..."
    return f"does not validate against pyhf's schema: {where}: {what}"


def _spec_label(spec: Mapping[str, Any]) -> str:
    try:
        chans = spec.get("channels") or []
        return str(sorted(c["name"] for c in chans)[0]) if chans else "?"
    except (KeyError, TypeError, AttributeError):
        return "?"


def _vec_config(
    cfg: Mapping[str, Any], n: int, inits: Array, lo: Array, hi: Array, fixed: Array, aux: Array
) -> tuple[Array, Array, Array, Array, Array, Array | None]:
    """Apply a measurement's configuration to a per-bin parameter set of ``n`` components."""
    sig = None
    if "inits" in cfg:
        inits = np.asarray(cfg["inits"], dtype=float).reshape(n)
    if "bounds" in cfg:
        bb = np.asarray(cfg["bounds"], dtype=float).reshape(n, 2)
        lo, hi = bb[:, 0].copy(), bb[:, 1].copy()
    if "auxdata" in cfg:
        aux = np.asarray(cfg["auxdata"], dtype=float).reshape(n)
    if "sigmas" in cfg:
        sig = np.asarray(cfg["sigmas"], dtype=float).reshape(n)
    if "fixed" in cfg:
        fixed = np.full(n, bool(cfg["fixed"]))
    return inits, lo, hi, fixed, aux, sig


@dataclass
class _PerBin:
    """A per-bin parameter set (staterror, shapesys, shapefactor) before slot assignment."""

    name: str
    mtype: str
    ctype: int
    pairs: NDArray[np.bool_]  # (P,) samples it multiplies
    comp_bins: list[list[int]]  # per component: the flat bins it acts on
    inits: Array
    lo: Array
    hi: Array
    fixed: Array
    aux: Array
    sigma: Array
    tau: Array


def compile_workspace(
    spec: Mapping[str, Any],
    *,
    measurement: str | None = None,
    name: str | None = None,
    modifier_settings: Mapping[str, Mapping[str, str]] | None = None,
    validate: bool = False,
) -> CompiledModel:
    """Read a pyhf JSON workspace (schema 1.0.0) into a :class:`CompiledModel`.

    Channels are ordered by name and their bins concatenated into one flat bin axis; the
    samples of the engine are the (channel, sample) pairs, also in pyhf's (sorted) order, and a
    pair is split further by bins where a per-bin parameter shared across channels acts on it.

    Parameters
    ----------
    spec
        The workspace dictionary (``channels``, ``observations``, ``measurements``, ``version``).
    measurement
        Name of the measurement to use (default: the first, as ``pyhf.Workspace.model``).
    name
        Label used in error messages and results (default: the first channel's name).
    modifier_settings
        ``{"normsys": {"interpcode": "code4"|"code1"}, "histosys": {"interpcode":
        "code4p"|"code0"}}``; the default is pyhf 0.7.6's (code4, code4p).
    validate
        Validate against pyhf's JSON schema first (:func:`validate_workspace`).

    Raises
    ------
    InputError
        For anything outside the supported class or inconsistent, naming the channel, sample or
        modifier.
    """
    channels_in = spec.get("channels")
    wsname = name or _spec_label(spec)
    if validate:
        validate_workspace(spec, wsname)
    if not channels_in:
        raise _fail(wsname, "has no channels")
    channels = sorted(channels_in, key=lambda c: c["name"])
    cnames = [c["name"] for c in channels]
    if len(set(cnames)) != len(cnames):
        raise _fail(wsname, "has two channels with the same name")
    settings = {"normsys": "code4", "histosys": "code4p"}
    for key, val in (modifier_settings or {}).items():
        settings[key] = val["interpcode"]
    if settings["normsys"] not in ("code4", "code1"):
        raise _fail(wsname, f"normsys interpcode {settings['normsys']!r} is not supported")
    if settings["histosys"] not in ("code4p", "code0"):
        raise _fail(wsname, f"histosys interpcode {settings['histosys']!r} is not supported")

    measurements = spec.get("measurements") or []
    if not measurements:
        raise _fail(wsname, "has no measurement")
    if measurement is None:
        meas = measurements[0]
    else:
        found = [m for m in measurements if m["name"] == measurement]
        if not found:
            raise _fail(wsname, f"has no measurement named {measurement!r}")
        meas = found[0]
    poi = meas["config"]["poi"]
    ucfg = _user_configs(meas)

    # ---- channels, bins, observed data, (channel, sample) pairs
    offsets: dict[str, int] = {}
    chan_nbins: dict[str, int] = {}
    observed_parts: list[Array] = []
    nb_total = 0
    for ch in channels:
        cname = ch["name"]
        obs = [o for o in spec.get("observations", []) if o["name"] == cname]
        if not obs:
            raise _fail(wsname, f"has no observation for channel {cname!r}")
        data = np.asarray(obs[0]["data"], dtype=float).ravel()
        if not np.all(np.isfinite(data)) or np.any(data < 0):
            bad = int(np.flatnonzero(~np.isfinite(data) | (data < 0))[0])
            raise _fail(
                wsname,
                f"channel {cname!r}: observed count {data[bad]:g} in bin {bad} is negative, "
                "NaN or infinite",
            )
        offsets[cname] = nb_total
        chan_nbins[cname] = data.size
        nb_total += data.size
        observed_parts.append(data)
    nbins = nb_total
    observed = np.concatenate(observed_parts)
    multi = len(channels) > 1

    pair_chan: list[str] = []
    pair_sample: list[str] = []
    pair_label: list[str] = []
    pair_mods: list[list[Mapping[str, Any]]] = []
    nom_rows: list[Array] = []
    for ch in channels:
        cname = ch["name"]
        samples_spec = sorted(ch["samples"], key=lambda s: s["name"])
        snames = [s["name"] for s in samples_spec]
        if len(set(snames)) != len(snames):
            raise _fail(wsname, f"channel {cname!r} has two samples with the same name")
        off, nbc = offsets[cname], chan_nbins[cname]
        for s in samples_spec:
            data = np.asarray(s["data"], dtype=float).ravel()
            where = f"channel {cname!r}, sample {s['name']!r}"
            if data.size != nbc:
                raise _fail(wsname, f"{where} has {data.size} bins, the observation {nbc}")
            if not np.all(np.isfinite(data)):
                raise _fail(wsname, f"{where} has a NaN or infinite yield")
            row = np.zeros(nbins)
            row[off : off + nbc] = data
            nom_rows.append(row)
            pair_chan.append(cname)
            pair_sample.append(s["name"])
            pair_label.append(f"{cname}/{s['name']}" if multi else s["name"])
            pair_mods.append(s.get("modifiers", []))
    npair = len(nom_rows)
    nominal_p = np.array(nom_rows).reshape(npair, nbins)
    chan_bins = {c: np.arange(offsets[c], offsets[c] + chan_nbins[c]) for c in cnames}

    # ---- modifiers by parameter name
    by_name: dict[str, dict[str, Any]] = {}
    for p in range(npair):
        seen: set[tuple[str, str]] = set()
        where = f"channel {pair_chan[p]!r}, sample {pair_sample[p]!r}"
        for mod in pair_mods[p]:
            mtype, mname = mod.get("type"), mod.get("name")
            if mtype not in SUPPORTED_MODIFIERS:
                raise _fail(
                    wsname,
                    f"{where}: modifier {mname!r} of type {mtype!r} is outside the model class "
                    f"of the fast engine ({', '.join(SUPPORTED_MODIFIERS)}); use --engine pyhf",
                )
            if (mname, mtype) in seen:
                raise _fail(wsname, f"{where} has modifier {mname!r} ({mtype}) twice")
            seen.add((mname, mtype))
            entry = by_name.setdefault(mname, {"types": [], "uses": []})
            if mtype not in entry["types"]:
                entry["types"].append(mtype)
            entry["uses"].append((p, mtype, mod.get("data")))
    for mname, entry in by_name.items():
        types = set(entry["types"])
        if len(types) > 1 and types != {"normsys", "histosys"}:
            raise _fail(
                wsname,
                f"parameter {mname!r} is used by modifiers of types "
                f"{', '.join(sorted(types))}, which HistFactory cannot share "
                "(only normsys and histosys can)",
            )
    if poi not in by_name or by_name[poi]["types"] != ["normfactor"]:
        raise _fail(wsname, f"the POI {poi!r} is not a normfactor of the model")

    # ---- globals, locals, decoupled
    g_rows: list[dict[str, Any]] = []
    ns_rows: list[tuple[Array, Array]] = []
    gh_rows: list[tuple[Array, Array]] = []
    local_hist: list[tuple[str, int, frozenset[int], Array, Array, tuple]] = []
    dec: list[tuple[str, float, float, float, bool, float, float]] = []
    perbin: list[_PerBin] = []

    def add_global(pname, ptype, kind, mask, init, lo, hi, fixed, ctype, aux, sigma, tau, binm):
        g_rows.append(
            {
                "name": pname,
                "type": ptype,
                "kind": kind,
                "mask": mask,
                "init": init,
                "lo": lo,
                "hi": hi,
                "fixed": fixed,
                "ctype": ctype,
                "aux": 0.0 if aux is None else aux,
                "sigma": 1.0 if sigma is None else sigma,
                "tau": tau,
                "binmask": binm,  # (P, B) bins of each pair it multiplies, or None
            }
        )

    for pname in sorted(by_name):
        entry = by_name[pname]
        types = set(entry["types"])
        cfg = ucfg.get(pname, {})
        mask = np.zeros(npair, dtype=bool)
        for p, _, _ in entry["uses"]:
            mask[p] = True
        if types == {"normfactor"}:
            init, bounds, fixed, _, _ = _scalar_config(
                wsname, pname, cfg, 1.0, (0.0, 10.0), None, None
            )
            add_global(
                pname,
                "normfactor",
                KIND_FACTOR,
                mask,
                init,
                *bounds,
                fixed,
                0,
                None,
                None,
                1.0,
                None,
            )
        elif types == {"lumi"}:
            init, bounds, fixed, aux, sigma = _scalar_config(
                wsname, pname, cfg, None, None, None, None
            )
            if aux is None or sigma is None:
                raise _fail(wsname, f"lumi parameter {pname!r} needs auxdata and sigmas")
            add_global(
                pname, "lumi", KIND_FACTOR, mask, init, *bounds, fixed, 1, aux, sigma, 1.0, None
            )
        elif types <= {"normsys", "histosys"}:
            if "sigmas" in cfg:
                raise _fail(wsname, f"{'/'.join(sorted(types))} parameter {pname!r} has sigmas")
            init, bounds, fixed, aux, _ = _scalar_config(
                wsname, pname, cfg, 0.0, (-5.0, 5.0), 0.0, 1.0
            )
            hi = np.ones(npair)
            lo = np.ones(npair)
            up = np.zeros((npair, nbins))
            dn = np.zeros((npair, nbins))
            for p, mtype, d in entry["uses"]:
                where = f"channel {pair_chan[p]!r}, sample {pair_sample[p]!r}"
                if mtype == "normsys":
                    hi[p], lo[p] = float(d["hi"]), float(d["lo"])
                    if hi[p] <= 0 or lo[p] <= 0:
                        raise _fail(wsname, f"{where}: normsys {pname!r} has a non-positive factor")
                else:
                    cb = chan_bins[pair_chan[p]]
                    hi_d = np.asarray(d["hi_data"], dtype=float).ravel()
                    lo_d = np.asarray(d["lo_data"], dtype=float).ravel()
                    if hi_d.size != cb.size or lo_d.size != cb.size:
                        raise _fail(wsname, f"{where}: histosys {pname!r} has the wrong length")
                    if not (np.all(np.isfinite(hi_d)) and np.all(np.isfinite(lo_d))):
                        raise _fail(wsname, f"{where}: histosys {pname!r} has NaN or inf data")
                    up[p, cb] = hi_d - nominal_p[p, cb]
                    dn[p, cb] = nominal_p[p, cb] - lo_d
            touched = (up != 0) | (dn != 0)
            bins = np.flatnonzero(touched.any(axis=0))
            if "normsys" in types:
                ns_rows.append((hi, lo))
                if bins.size:
                    gh_rows.append((up, dn))
                kind = KIND_NORMSYS
                ptype = "normsys" if types == {"normsys"} else "normsys+histosys"
                add_global(pname, ptype, kind, mask, init, *bounds, fixed, 1, aux, 1.0, 1.0, None)
                if bins.size:
                    g_rows[-1]["histo"] = True
            elif bins.size == 0:
                dec.append((pname, init, bounds[0], bounds[1], fixed, aux, 1.0))
            elif bins.size == 1:
                b = int(bins[0])
                sig = frozenset(np.flatnonzero(touched[:, b]).tolist())
                local_hist.append(
                    (pname, b, sig, up[:, b].copy(), dn[:, b].copy(), (init, bounds, fixed, aux))
                )
            else:
                gh_rows.append((up, dn))
                add_global(
                    pname,
                    "histosys",
                    KIND_HISTOSYS,
                    mask,
                    init,
                    *bounds,
                    fixed,
                    1,
                    aux,
                    1.0,
                    1.0,
                    None,
                )
                g_rows[-1]["histo"] = True
        else:
            perbin.append(
                _per_bin_set(
                    wsname,
                    pname,
                    entry,
                    cfg,
                    npair,
                    nbins,
                    nominal_p,
                    pair_chan,
                    pair_sample,
                    cnames,
                    chan_bins,
                )
            )

    # per-bin sets acting on several flat bins per component become globals (one per component)
    locals_pb: list[_PerBin] = []
    for pb in perbin:
        if all(len(cb) <= 1 for cb in pb.comp_bins):
            locals_pb.append(pb)
            continue
        for i, cb in enumerate(pb.comp_bins):
            binm = np.zeros((npair, nbins), dtype=bool)
            binm[np.ix_(pb.pairs, np.asarray(cb, dtype=np.intp))] = True
            effect = bool(np.any(nominal_p[binm] != 0))
            add_global(
                f"{pb.name}[{i}]",
                pb.mtype,
                KIND_FACTOR,
                binm.any(axis=1),
                pb.inits[i],
                pb.lo[i],
                pb.hi[i],
                bool(pb.fixed[i]) or not effect,
                pb.ctype,
                pb.aux[i],
                pb.sigma[i],
                pb.tau[i],
                binm,
            )
            g_rows[-1]["vec"] = (pb.name, i)

    # ---- engine samples: (channel, sample) pairs, split by the bin-dependent globals on them
    bin_g = [g for g, r in enumerate(g_rows) if r["binmask"] is not None]
    unit_pair: list[int] = []
    unit_bins: list[NDArray[np.bool_]] = []
    unit_sig: list[frozenset[int]] = []
    unit_label: list[str] = []
    for p in range(npair):
        cb = chan_bins[pair_chan[p]]
        acting = [g for g in bin_g if g_rows[g]["mask"][p]]
        if not acting:
            bm = np.zeros(nbins, dtype=bool)
            bm[cb] = True
            unit_pair.append(p)
            unit_bins.append(bm)
            unit_sig.append(frozenset())
            unit_label.append(pair_label[p])
            continue
        sigs: dict[frozenset[int], NDArray[np.bool_]] = {}
        for b in cb:
            s = frozenset(g for g in acting if g_rows[g]["binmask"][p, b])
            sigs.setdefault(s, np.zeros(nbins, dtype=bool))[b] = True
        for j, (s, bm) in enumerate(sigs.items()):
            unit_pair.append(p)
            unit_bins.append(bm)
            unit_sig.append(s)
            unit_label.append(f"{pair_label[p]}#{j}")
    up_idx = np.asarray(unit_pair, dtype=np.intp)
    ubins = np.array(unit_bins, dtype=bool).reshape(len(unit_pair), nbins)
    nsamp = up_idx.size
    nominal = nominal_p[up_idx] * ubins

    # ---- local histosys slots grouped by signature (set of samples touched)
    def unit_set(pairs: frozenset[int], b: int) -> frozenset[int]:
        return frozenset(u for u in range(nsamp) if unit_pair[u] in pairs and ubins[u, b])

    local_hist = [
        (pn, b, unit_set(sig, b), up[up_idx] * ubins[:, b], dn[up_idx] * ubins[:, b], cfgv)
        for pn, b, sig, up, dn, cfgv in local_hist
    ]
    sigs_h: list[frozenset[int]] = []
    for _, _, sig, *_ in local_hist:
        if sig not in sigs_h:
            sigs_h.append(sig)
    slot_base: dict[frozenset[int], int] = {}
    kh = 0
    for sig in sigs_h:
        counts = np.zeros(nbins, dtype=int)
        for _, b, s2, *_ in local_hist:
            if s2 == sig:
                counts[b] += 1
        slot_base[sig] = kh
        kh += int(counts.max())
    # per-bin local sets: packed into slot columns whose bins are disjoint
    columns: list[NDArray[np.bool_]] = []
    col_sets: list[list[_PerBin]] = []
    for pb in locals_pb:
        bins_pb = np.zeros(nbins, dtype=bool)
        for cb in pb.comp_bins:
            bins_pb[cb] = True
        for j, occ in enumerate(columns):
            if not np.any(occ & bins_pb):
                occ |= bins_pb
                col_sets[j].append(pb)
                break
        else:
            columns.append(bins_pb.copy())
            col_sets.append([pb])
    kg = len(columns)
    kk = kh + kg
    lh_up = np.zeros((nsamp, nbins, kh))
    lh_dn = np.zeros((nsamp, nbins, kh))
    lh_sig = np.zeros((kh, nsamp), dtype=bool)
    l_present = np.zeros((nbins, kk), dtype=bool)
    l_init = np.zeros((nbins, kk))
    l_lo = np.zeros((nbins, kk))
    l_hi = np.ones((nbins, kk))
    l_fixed = np.zeros((nbins, kk), dtype=bool)
    l_aux = np.zeros((nbins, kk))
    l_sigma = np.ones((nbins, kk))
    l_tau = np.ones((nbins, kk))
    l_ctype = np.zeros((nbins, kk), dtype=np.int8)
    l_names: dict[str, tuple[int, int]] = {}
    vec_layout: dict[str, list[tuple[int, int, int]]] = {}
    fill = {sig: np.zeros(nbins, dtype=int) for sig in sigs_h}
    for pname, b, sig, up, dn, (init, bounds, fixed, aux) in local_hist:
        k = slot_base[sig] + fill[sig][b]
        fill[sig][b] += 1
        lh_up[:, b, k] = up
        lh_dn[:, b, k] = dn
        lh_sig[k, list(sig)] = True
        l_present[b, k] = True
        l_init[b, k] = init
        l_lo[b, k], l_hi[b, k] = bounds
        l_fixed[b, k] = fixed
        l_aux[b, k] = aux
        l_ctype[b, k] = CON_GAUSS
        l_names[pname] = (b, k)
    st_mask = np.zeros((kg, nsamp), dtype=bool)
    st_names: list[str] = []
    for m, sets in enumerate(col_sets):
        k = kh + m
        l_init[:, k] = 1.0  # bins without the parameter: a neutral factor
        l_aux[:, k] = 1.0
        l_lo[:, k], l_hi[:, k] = 1.0, 1.0
        st_names.append("+".join(pb.name for pb in sets))
        for pb in sets:
            st_mask[m] |= pb.pairs[up_idx]
            comps = []
            for i, cb in enumerate(pb.comp_bins):
                if not cb:
                    continue
                b = cb[0]
                l_present[b, k] = True
                l_init[b, k] = pb.inits[i]
                l_lo[b, k], l_hi[b, k] = pb.lo[i], pb.hi[i]
                l_aux[b, k] = pb.aux[i]
                l_sigma[b, k] = pb.sigma[i]
                l_tau[b, k] = pb.tau[i]
                l_ctype[b, k] = pb.ctype
                # a factor on empty templates has no effect: held at its init
                effect = bool(np.any(nominal_p[pb.pairs, b] != 0))
                l_fixed[b, k] = bool(pb.fixed[i]) or not effect
                comps.append((1, b, k))
            vec_layout[pb.name] = comps

    # ---- global arrays on the engine samples
    ng = len(g_rows)
    g_names = [r["name"] for r in g_rows]
    for g, r in enumerate(g_rows):
        if "vec" in r:
            vec_layout.setdefault(r["vec"][0], []).append((0, g, 0))
    g_mask = np.zeros((ng, nsamp), dtype=bool)
    for g, r in enumerate(g_rows):
        if r["binmask"] is None:
            g_mask[g] = r["mask"][up_idx]
        else:
            g_mask[g] = np.array([g in unit_sig[u] for u in range(nsamp)], dtype=bool)
    ns_index = np.array([g for g, r in enumerate(g_rows) if r["kind"] == KIND_NORMSYS], np.intp)
    gh_index = np.array([g for g, r in enumerate(g_rows) if r.get("histo")], dtype=np.intp)
    ns_hi = np.array([r[0][up_idx] for r in ns_rows]).reshape(len(ns_rows), nsamp)
    ns_lo = np.array([r[1][up_idx] for r in ns_rows]).reshape(len(ns_rows), nsamp)
    gh_up = np.array([r[0][up_idx] * ubins for r in gh_rows]).reshape(len(gh_rows), nsamp, nbins)
    gh_dn = np.array([r[1][up_idx] * ubins for r in gh_rows]).reshape(len(gh_rows), nsamp, nbins)
    poi_index = g_names.index(poi)
    nd = len(dec)

    def w1(key: str, dtype: Any = float) -> Any:
        return np.asarray([r[key] for r in g_rows], dtype=dtype).reshape(1, ng)

    def d1(j: int, dtype: Any = float) -> Any:
        return np.asarray([d[j] for d in dec], dtype=dtype).reshape(1, nd)

    g_ctype = np.asarray([r["ctype"] for r in g_rows], dtype=np.int8).reshape(ng)
    model = CompiledModel(
        names=[wsname],
        samples=unit_label,
        nbins=nbins,
        nominal=nominal[None],
        observed=observed[None],
        poi_name=poi,
        poi_index=poi_index,
        g_names=g_names,
        g_type=[r["type"] for r in g_rows],
        g_kind=np.array([r["kind"] for r in g_rows], dtype=int).reshape(ng),
        g_mask=g_mask,
        g_init=w1("init"),
        g_lo=w1("lo"),
        g_hi=w1("hi"),
        g_fixed=w1("fixed", bool),
        g_constrained=g_ctype != CON_NONE,
        g_aux=w1("aux"),
        g_sigma=w1("sigma"),
        ns_index=ns_index,
        ns_hi=ns_hi[None],
        ns_lo=ns_lo[None],
        ns_coef=code4_coefficients(ns_hi, ns_lo)[None],
        gh_index=gh_index,
        gh_up=gh_up[None],
        gh_dn=gh_dn[None],
        kh=kh,
        kg=kg,
        lh_up=lh_up[None],
        lh_dn=lh_dn[None],
        lh_sig=lh_sig,
        st_mask=st_mask,
        st_names=st_names,
        l_present=l_present[None],
        l_init=l_init[None],
        l_lo=l_lo[None],
        l_hi=l_hi[None],
        l_fixed=l_fixed[None],
        l_aux=l_aux[None],
        l_sigma=l_sigma[None],
        l_names=[l_names],
        d_names=[[d[0] for d in dec]],
        d_init=d1(1),
        d_lo=d1(2),
        d_hi=d1(3),
        d_fixed=d1(4, bool),
        d_aux=d1(5),
        d_sigma=d1(6),
        histosys_code=settings["histosys"],
        normsys_code=settings["normsys"],
        measurement=meas["name"],
        g_ctype=g_ctype,
        g_tau=w1("tau"),
        l_ctype=l_ctype[None],
        l_tau=l_tau[None],
        vec_layout=vec_layout,
        channels=cnames,
        channel_slices={c: (offsets[c], offsets[c] + chan_nbins[c]) for c in cnames},
    )
    _check_bounds(model)
    return model


def _per_bin_set(
    wsname: str,
    pname: str,
    entry: Mapping[str, Any],
    cfg: Mapping[str, Any],
    npair: int,
    nbins: int,
    nominal_p: Array,
    pair_chan: list[str],
    pair_sample: list[str],
    cnames: list[str],
    chan_bins: Mapping[str, NDArray[np.intp]],
) -> _PerBin:
    """A staterror, shapesys or shapefactor parameter set with pyhf 0.7.6's semantics."""
    mtype = entry["types"][0]
    uses = entry["uses"]
    pairs = np.zeros(npair, dtype=bool)
    for p, _, _ in uses:
        pairs[p] = True
    used_ch = [c for c in cnames if any(pair_chan[p] == c for p, _, _ in uses)]
    if mtype == "staterror":
        # one factor per bin of every channel carrying it (never shared across channels);
        # sigma from the quadrature sum of the samples' uncertainties relative to the summed
        # nominal of the samples carrying it anywhere
        uncrt = np.zeros((npair, nbins))
        for p, _, d in uses:
            cb = chan_bins[pair_chan[p]]
            u = np.asarray(d, dtype=float).ravel()
            if u.size != cb.size:
                raise _fail(
                    wsname,
                    f"channel {pair_chan[p]!r}, sample {pair_sample[p]!r}: staterror "
                    f"{pname!r} has {u.size} values for {cb.size} bins",
                )
            uncrt[p, cb] = u
        carriers = {pair_sample[p] for p, _, _ in uses}
        carrier_pairs = np.array([pair_sample[p] in carriers for p in range(npair)])
        nomsall = nominal_p[carrier_pairs].sum(axis=0)
        safe = np.where(nomsall > 0, nomsall, 1.0)
        rel2 = np.where(nomsall > 0, (uncrt / safe) ** 2, 0.0).sum(axis=0)
        bins = np.concatenate([chan_bins[c] for c in used_ch])
        sig = np.sqrt(rel2[bins])
        n = bins.size
        fixed = sig == 0
        sig = np.where(fixed, 1.0, sig)
        inits, lo, hi, fixed, aux, sig_cfg = _vec_config(
            cfg, n, np.ones(n), np.full(n, 1e-10), np.full(n, 10.0), fixed, np.ones(n)
        )
        if sig_cfg is not None:
            sig = sig_cfg
        comp_bins = [[int(b)] for b in bins]
        return _PerBin(
            pname, mtype, CON_GAUSS, pairs, comp_bins, inits, lo, hi, fixed, aux, sig, np.ones(n)
        )
    if mtype == "shapesys":
        if len(used_ch) > 1:
            raise _fail(
                wsname,
                f"shapesys {pname!r} is used in channels {', '.join(used_ch)}; pyhf cannot "
                "share a shapesys across channels (use one name per channel)",
            )
        first_p, _, first_d = uses[0]  # pyhf takes the constraint from the first sample
        cb = chan_bins[used_ch[0]]
        for p, _, d in uses:
            if np.asarray(d, dtype=float).ravel().size != cb.size:
                raise _fail(
                    wsname,
                    f"channel {pair_chan[p]!r}, sample {pair_sample[p]!r}: shapesys {pname!r} "
                    f"has the wrong length",
                )
        unc = np.asarray(first_d, dtype=float).ravel()
        nom = nominal_p[first_p, cb]
        valid = (nom > 0) & (unc > 0)
        tau = np.where(valid, (nom / np.where(valid, unc, 1.0)) ** 2, 1.0)
        n = cb.size
        inits, lo, hi, fixed, aux, sig_cfg = _vec_config(
            cfg, n, np.ones(n), np.full(n, 1e-10), np.full(n, 10.0), ~valid, tau.copy()
        )
        if sig_cfg is not None:
            raise _fail(wsname, f"shapesys parameter {pname!r} does not use sigmas")
        comp_bins = [[int(b)] for b in cb]
        return _PerBin(
            pname, mtype, CON_POISSON, pairs, comp_bins, inits, lo, hi, fixed, aux, np.ones(n), tau
        )
    # shapefactor: component i acts on bin i of every channel carrying it (shared across
    # channels); the number of components is the bin count of the first channel
    n = int(chan_bins[used_ch[0]].size)
    for c in used_ch:
        if chan_bins[c].size > n:
            raise _fail(
                wsname,
                f"shapefactor {pname!r} has {n} parameters (channel {used_ch[0]!r}) but channel "
                f"{c!r} has {chan_bins[c].size} bins",
            )
    comp_bins = [[int(chan_bins[c][i]) for c in used_ch if i < chan_bins[c].size] for i in range(n)]
    inits, lo, hi, fixed, aux, sig_cfg = _vec_config(
        cfg, n, np.ones(n), np.zeros(n), np.full(n, 10.0), np.zeros(n, dtype=bool), np.zeros(n)
    )
    if sig_cfg is not None or "auxdata" in cfg:
        raise _fail(wsname, f"shapefactor parameter {pname!r} is unconstrained (no sigmas/auxdata)")
    return _PerBin(
        pname, mtype, CON_NONE, pairs, comp_bins, inits, lo, hi, fixed, aux, np.ones(n), np.ones(n)
    )


def _check_bounds(model: CompiledModel) -> None:
    name = model.name
    bad = (model.g_init < model.g_lo) | (model.g_init > model.g_hi)
    if bad.any():
        g = int(np.argwhere(bad)[0][1])
        raise _fail(name, f"init of parameter {model.g_names[g]!r} lies outside its bounds")
    bad_l = model.l_present & ((model.l_init < model.l_lo) | (model.l_init > model.l_hi))
    if bad_l.any():
        raise _fail(name, "the init of a per-bin parameter lies outside its bounds")
    if np.any(model.g_sigma[:, model.g_ctype == CON_GAUSS] <= 0) or np.any(
        model.l_sigma[model.l_present] <= 0
    ):
        raise _fail(name, "a constrained parameter has a non-positive sigma")


def stack_models(models: Sequence[CompiledModel]) -> CompiledModel:
    """Stack workspaces of identical structure (samples, bins, globals, slots) along ``W``.

    Raises
    ------
    InputError
        If a workspace's structure differs from the first one's (naming both).
    """
    first = models[0]
    for m in models[1:]:
        same = (
            m.samples == first.samples
            and m.nbins == first.nbins
            and m.g_names == first.g_names
            and m.g_type == first.g_type
            and m.kh == first.kh
            and m.kg == first.kg
            and m.poi_name == first.poi_name
            and np.array_equal(m.g_mask, first.g_mask)
            and np.array_equal(m.lh_sig, first.lh_sig)
            and np.array_equal(m.st_mask, first.st_mask)
            and m.n_decoupled == first.n_decoupled
            and np.array_equal(m.g_ctype, first.g_ctype)
            and m.vec_layout == first.vec_layout
            and m.histosys_code == first.histosys_code
            and m.normsys_code == first.normsys_code
        )
        if not same:
            raise InputError(
                f"workspace {m.name}: structure differs from {first.name}; fit them separately"
            )
    kw: dict[str, Any] = {f: np.concatenate([getattr(m, f) for m in models]) for f in _W_ARRAYS}
    kw["names"] = [n for m in models for n in m.names]
    kw["l_names"] = [n for m in models for n in m.l_names]
    kw["d_names"] = [n for m in models for n in m.d_names]
    return replace(first, **kw)
