"""A pyhf JSON workspace read into flat arrays for the batched engine.

The model class is one channel with any samples and the modifiers ``normfactor``, ``lumi``,
``normsys``, ``histosys`` and ``staterror``, with the measurement's parameter configuration
(inits, bounds, fixed flags, auxdata, sigmas), exactly as pyhf 0.7.6 builds it
(``pyhf.pdf``, ``pyhf.modifiers``). Expected yield of sample ``s`` in bin ``b``::

    lambda_sb = F_s * Gamma_sb * (nominal_sb + sum_h delta_hsb(alpha_h))

with ``F_s`` the product of the normfactors, lumi and normsys factors on ``s``, ``Gamma_sb`` the
product of the staterror factors, and ``delta`` the histosys deltas (``interp``).

Parameters are split by how they couple:

- *global* parameters act on many bins: normfactors (the POI among them), lumi, normsys and
  histosys whose variations touch more than one bin;
- *local* parameters act on one bin only: the staterror factor of each bin and every histosys
  whose variations touch a single bin (one per bin per sample for uncorrelated shape
  uncertainties). They sit in ``(bin, slot)`` arrays: histosys slots are grouped by the set of
  samples they touch, then one slot per staterror modifier;
- *decoupled* parameters do not change any yield (a histosys with ``hi == lo == nominal``); their
  best value is their auxiliary datum clipped to the bounds.

Anything outside the class (several channels, ``shapesys``, ``shapefactor``, a parameter shared
by two modifier types) is refused with a one-line :class:`~zprime.errors.InputError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from zprime.errors import InputError
from zprime.stats.interp import code4_coefficients

__all__ = ["CompiledModel", "Params", "compile_workspace", "stack_models"]

Array = NDArray[np.float64]

SUPPORTED_MODIFIERS = ("normfactor", "lumi", "normsys", "histosys", "staterror")
KIND_FACTOR, KIND_NORMSYS, KIND_HISTOSYS = 0, 1, 2


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
        """Sum over constrained parameters of ``-log(sigma sqrt(2 pi))`` per workspace (W,)."""
        half_log_2pi = 0.5 * math.log(2 * math.pi)
        cg = np.where(self.g_constrained[None, :], -np.log(self.g_sigma) - half_log_2pi, 0.0)
        cl = np.where(self.l_present, -np.log(self.l_sigma) - half_log_2pi, 0.0)
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
        for m, nm in enumerate(self.st_names):
            out[nm] = [float(v) for v in p.l[i, :, self.kh + m]]
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
        for m, nm in enumerate(self.st_names):
            if nm in values:
                p.l[0, :, self.kh + m] = np.asarray(values[nm], dtype=float)
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


def compile_workspace(
    spec: Mapping[str, Any],
    *,
    measurement: str | None = None,
    name: str | None = None,
    modifier_settings: Mapping[str, Mapping[str, str]] | None = None,
) -> CompiledModel:
    """Read a pyhf JSON workspace (schema 1.0.0) into a :class:`CompiledModel`.

    Parameters
    ----------
    spec
        The workspace dictionary (``channels``, ``observations``, ``measurements``, ``version``).
    measurement
        Name of the measurement to use (default: the first, as ``pyhf.Workspace.model``).
    name
        Label used in error messages and results (default: the channel name).
    modifier_settings
        ``{"normsys": {"interpcode": "code4"|"code1"}, "histosys": {"interpcode":
        "code4p"|"code0"}}``; the default is pyhf 0.7.6's (code4, code4p).

    Raises
    ------
    InputError
        For anything outside the supported class, naming the channel, sample or modifier.
    """
    channels = spec.get("channels")
    wsname = name or (channels[0].get("name", "?") if channels else "?")
    if not channels:
        raise _fail(wsname, "has no channels")
    if len(channels) != 1:
        raise _fail(
            wsname,
            f"has {len(channels)} channels ({', '.join(c['name'] for c in channels)}); "
            "the fast engine supports exactly one",
        )
    channel = channels[0]
    cname = channel["name"]
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

    obs = [o for o in spec.get("observations", []) if o["name"] == cname]
    if not obs:
        raise _fail(wsname, f"has no observation for channel {cname!r}")
    observed = np.asarray(obs[0]["data"], dtype=float)
    nbins = observed.size

    # pyhf orders samples by name; sums do not depend on it but we keep pyhf's order
    samples_spec = sorted(channel["samples"], key=lambda s: s["name"])
    snames = [s["name"] for s in samples_spec]
    if len(set(snames)) != len(snames):
        raise _fail(wsname, f"channel {cname!r} has two samples with the same name")
    nsamp = len(snames)
    nominal = np.zeros((nsamp, nbins))
    for i, s in enumerate(samples_spec):
        data = np.asarray(s["data"], dtype=float)
        if data.size != nbins:
            raise _fail(
                wsname, f"sample {s['name']!r} has {data.size} bins, the observation {nbins}"
            )
        nominal[i] = data
    if not np.all(np.isfinite(nominal)):
        raise _fail(wsname, "a sample has a NaN or infinite yield")
    if not np.all(np.isfinite(observed)) or np.any(observed < 0):
        raise _fail(wsname, "the observed data have a negative, NaN or infinite count")

    # collect modifiers by parameter name
    by_name: dict[str, dict[str, Any]] = {}
    for i, s in enumerate(samples_spec):
        for mod in s["modifiers"]:
            mtype, mname = mod["type"], mod["name"]
            if mtype not in SUPPORTED_MODIFIERS:
                raise _fail(
                    wsname,
                    f"modifier {mname!r} of type {mtype!r} on sample {s['name']!r} is not "
                    f"supported by the fast engine (supported: {', '.join(SUPPORTED_MODIFIERS)})",
                )
            entry = by_name.setdefault(mname, {"type": mtype, "samples": {}})
            if entry["type"] != mtype:
                raise _fail(
                    wsname,
                    f"parameter {mname!r} is used by modifiers of types {entry['type']!r} and "
                    f"{mtype!r}; the fast engine needs one type per parameter",
                )
            if i in entry["samples"]:
                raise _fail(wsname, f"sample {s['name']!r} has modifier {mname!r} twice")
            entry["samples"][i] = mod.get("data")
    if poi not in by_name or by_name[poi]["type"] != "normfactor":
        raise _fail(wsname, f"the POI {poi!r} is not a normfactor of the model")

    g_names: list[str] = []
    g_type: list[str] = []
    g_kind: list[int] = []
    g_mask: list[NDArray[np.bool_]] = []
    g_init: list[float] = []
    g_lo: list[float] = []
    g_hi: list[float] = []
    g_fixed: list[bool] = []
    g_con: list[bool] = []
    g_aux: list[float] = []
    g_sigma: list[float] = []
    ns_rows: list[tuple[Array, Array]] = []
    gh_rows: list[tuple[Array, Array]] = []
    local_hist: list[tuple[str, int, frozenset[int], Array, Array, tuple]] = []
    dec: list[tuple[str, float, float, float, bool, float, float]] = []
    staterrors: list[tuple[str, NDArray[np.bool_], Array, NDArray[np.bool_], tuple]] = []

    def add_global(pname, ptype, kind, mask, init, bounds, fixed, con, aux, sigma):
        g_names.append(pname)
        g_type.append(ptype)
        g_kind.append(kind)
        g_mask.append(mask)
        g_init.append(init)
        g_lo.append(bounds[0])
        g_hi.append(bounds[1])
        g_fixed.append(fixed)
        g_con.append(con)
        g_aux.append(aux if aux is not None else 0.0)
        g_sigma.append(sigma if sigma is not None else 1.0)

    for pname in sorted(by_name):
        entry = by_name[pname]
        ptype = entry["type"]
        mask = np.zeros(nsamp, dtype=bool)
        mask[list(entry["samples"])] = True
        cfg = ucfg.get(pname, {})
        if ptype == "normfactor":
            init, bounds, fixed, _, _ = _scalar_config(
                wsname, pname, cfg, 1.0, (0.0, 10.0), None, None
            )
            add_global(pname, ptype, KIND_FACTOR, mask, init, bounds, fixed, False, None, None)
        elif ptype == "lumi":
            init, bounds, fixed, aux, sigma = _scalar_config(
                wsname, pname, cfg, None, None, None, None
            )
            if aux is None or sigma is None:
                raise _fail(wsname, f"lumi parameter {pname!r} needs auxdata and sigmas")
            add_global(pname, ptype, KIND_FACTOR, mask, init, bounds, fixed, True, aux, sigma)
        elif ptype == "normsys":
            if "sigmas" in cfg:
                raise _fail(wsname, f"normsys parameter {pname!r} does not use sigmas")
            init, bounds, fixed, aux, _ = _scalar_config(
                wsname, pname, cfg, 0.0, (-5.0, 5.0), 0.0, 1.0
            )
            hi = np.ones(nsamp)
            lo = np.ones(nsamp)
            for i, d in entry["samples"].items():
                hi[i], lo[i] = float(d["hi"]), float(d["lo"])
            if np.any(hi <= 0) or np.any(lo <= 0):
                raise _fail(wsname, f"normsys {pname!r} has a non-positive hi or lo factor")
            ns_rows.append((hi, lo))
            add_global(pname, ptype, KIND_NORMSYS, mask, init, bounds, fixed, True, aux, 1.0)
        elif ptype == "histosys":
            if "sigmas" in cfg:
                raise _fail(wsname, f"histosys parameter {pname!r} does not use sigmas")
            init, bounds, fixed, aux, _ = _scalar_config(
                wsname, pname, cfg, 0.0, (-5.0, 5.0), 0.0, 1.0
            )
            up = np.zeros((nsamp, nbins))
            dn = np.zeros((nsamp, nbins))
            for i, d in entry["samples"].items():
                hi_d = np.asarray(d["hi_data"], dtype=float)
                lo_d = np.asarray(d["lo_data"], dtype=float)
                if hi_d.size != nbins or lo_d.size != nbins:
                    raise _fail(
                        wsname, f"histosys {pname!r} on sample {snames[i]!r} has wrong length"
                    )
                if not (np.all(np.isfinite(hi_d)) and np.all(np.isfinite(lo_d))):
                    raise _fail(wsname, f"histosys {pname!r} has NaN or infinite data")
                up[i] = hi_d - nominal[i]
                dn[i] = nominal[i] - lo_d
            touched = (up != 0) | (dn != 0)
            bins = np.flatnonzero(touched.any(axis=0))
            if bins.size == 0:
                dec.append((pname, init, bounds[0], bounds[1], fixed, aux, 1.0))
            elif bins.size == 1:
                b = int(bins[0])
                sig = frozenset(np.flatnonzero(touched[:, b]).tolist())
                local_hist.append(
                    (pname, b, sig, up[:, b].copy(), dn[:, b].copy(), (init, bounds, fixed, aux))
                )
            else:
                gh_rows.append((up, dn))
                add_global(pname, ptype, KIND_HISTOSYS, mask, init, bounds, fixed, True, aux, 1.0)
        elif ptype == "staterror":
            uncrt = np.zeros((nsamp, nbins))
            for i, d in entry["samples"].items():
                u = np.asarray(d, dtype=float)
                if u.size != nbins:
                    raise _fail(wsname, f"staterror {pname!r} on {snames[i]!r} has wrong length")
                uncrt[i] = u
            nomsall = nominal[mask].sum(axis=0)
            with np.errstate(divide="ignore", invalid="ignore"):
                rel2 = np.where(
                    nomsall > 0, (uncrt / np.where(nomsall > 0, nomsall, 1.0)) ** 2, 0.0
                )
            sigmas = np.sqrt(rel2.sum(axis=0))
            fixed_b = sigmas == 0
            sigmas = np.where(fixed_b, 1.0, sigmas)
            inits = np.ones(nbins)
            lo_b = np.full(nbins, 1e-10)
            hi_b = np.full(nbins, 10.0)
            aux_b = np.ones(nbins)
            if "inits" in cfg:
                inits = np.asarray(cfg["inits"], dtype=float)
            if "bounds" in cfg:
                bb = np.asarray(cfg["bounds"], dtype=float)
                lo_b, hi_b = bb[:, 0], bb[:, 1]
            if "auxdata" in cfg:
                aux_b = np.asarray(cfg["auxdata"], dtype=float)
            if "sigmas" in cfg:
                sigmas = np.asarray(cfg["sigmas"], dtype=float)
            if "fixed" in cfg:
                fixed_b = np.full(nbins, bool(cfg["fixed"]))
            staterrors.append((pname, mask, sigmas, fixed_b, (inits, lo_b, hi_b, aux_b)))

    # local histosys slots grouped by signature (set of samples touched)
    sigs: list[frozenset[int]] = []
    for _, _, sig, *_ in local_hist:
        if sig not in sigs:
            sigs.append(sig)
    slot_base: dict[frozenset[int], int] = {}
    kh = 0
    for sig in sigs:
        counts = np.zeros(nbins, dtype=int)
        for _, b, s2, *_ in local_hist:
            if s2 == sig:
                counts[b] += 1
        slot_base[sig] = kh
        kh += int(counts.max())
    kg = len(staterrors)
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
    l_names: dict[str, tuple[int, int]] = {}
    fill = {sig: np.zeros(nbins, dtype=int) for sig in sigs}
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
        l_names[pname] = (b, k)
    st_mask = np.zeros((kg, nsamp), dtype=bool)
    st_names = []
    for m, (pname, mask, sigmas, fixed_b, (inits, lo_b, hi_b, aux_b)) in enumerate(staterrors):
        k = kh + m
        st_mask[m] = mask
        st_names.append(pname)
        l_present[:, k] = True
        l_init[:, k] = inits
        l_lo[:, k], l_hi[:, k] = lo_b, hi_b
        l_fixed[:, k] = fixed_b
        l_aux[:, k] = aux_b
        l_sigma[:, k] = sigmas

    g_arr = np.asarray
    ns_index = np.array([i for i, k in enumerate(g_kind) if k == KIND_NORMSYS], dtype=np.intp)
    gh_index = np.array([i for i, k in enumerate(g_kind) if k == KIND_HISTOSYS], dtype=np.intp)
    ns_hi = np.array([r[0] for r in ns_rows]).reshape(len(ns_rows), nsamp)
    ns_lo = np.array([r[1] for r in ns_rows]).reshape(len(ns_rows), nsamp)
    gh_up = np.array([r[0] for r in gh_rows]).reshape(len(gh_rows), nsamp, nbins)
    gh_dn = np.array([r[1] for r in gh_rows]).reshape(len(gh_rows), nsamp, nbins)
    poi_index = g_names.index(poi)
    nd = len(dec)

    def w1(a: Any, dtype: Any = float) -> Any:
        return g_arr(a, dtype=dtype)[None, ...]

    model = CompiledModel(
        names=[wsname],
        samples=snames,
        nbins=nbins,
        nominal=nominal[None],
        observed=observed[None],
        poi_name=poi,
        poi_index=poi_index,
        g_names=g_names,
        g_type=g_type,
        g_kind=np.array(g_kind, dtype=int),
        g_mask=np.array(g_mask, dtype=bool).reshape(len(g_names), nsamp),
        g_init=w1(g_init),
        g_lo=w1(g_lo),
        g_hi=w1(g_hi),
        g_fixed=w1(g_fixed, bool),
        g_constrained=np.array(g_con, dtype=bool),
        g_aux=w1(g_aux),
        g_sigma=w1(g_sigma),
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
        d_init=w1([d[1] for d in dec]).reshape(1, nd),
        d_lo=w1([d[2] for d in dec]).reshape(1, nd),
        d_hi=w1([d[3] for d in dec]).reshape(1, nd),
        d_fixed=w1([d[4] for d in dec], bool).reshape(1, nd),
        d_aux=w1([d[5] for d in dec]).reshape(1, nd),
        d_sigma=w1([d[6] for d in dec]).reshape(1, nd),
        histosys_code=settings["histosys"],
        normsys_code=settings["normsys"],
        measurement=meas["name"],
    )
    _check_bounds(model)
    return model


def _check_bounds(model: CompiledModel) -> None:
    name = model.name
    bad = (model.g_init < model.g_lo) | (model.g_init > model.g_hi)
    if bad.any():
        g = int(np.argwhere(bad)[0][1])
        raise _fail(name, f"init of parameter {model.g_names[g]!r} lies outside its bounds")
    bad_l = model.l_present & ((model.l_init < model.l_lo) | (model.l_init > model.l_hi))
    if bad_l.any():
        raise _fail(name, "the init of a per-bin parameter lies outside its bounds")
    if np.any(model.g_sigma[:, model.g_constrained] <= 0) or np.any(
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
