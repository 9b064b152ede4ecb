"""Tree-level QED matrix element of e+e- -> f1 f1bar f2 f2bar, helicity amplitudes over events.

This module owns the exact matrix element of :mod:`zprime.generators.fourfermion`: every
tree-level diagram of e-(p1) e+(p2) -> f1-(p3) f1+(p4) f2-(p5) f2+(p6) with two photon
propagators, all fermion masses kept, computed as numerical helicity amplitudes in the Dirac
representation of :mod:`zprime.physics.dirac`, vectorised over events and over the 64 helicity
configurations.

Diagrams
--------
Written with every particle outgoing, the six external fermions form three fermion lines; each
line joins one "barred" end (``vbar(p2)``, ``ubar(p3)``, ``ubar(p5)``) to one unbarred end
(``u(p1)``, ``v(p4)``, ``v(p6)``) of the same flavour. A *pairing* is such an assignment; it
carries the sign of its permutation of the unbarred ends (Fermi statistics: the relative minus
sign of Bhabha's s- and t-channel graphs). In each pairing one line is *central*: it emits both
photons, which end on the two other lines, in either order. So a pairing has 3 x 2 = 6 diagrams:

- e e mu mu, e e tau tau (``f1 = e``): 2 pairings, 12 diagrams: the t-channel pairing (e- and e+
  lines scattered) holds the multiperipheral (two-photon) graphs with the mu line central and the
  bremsstrahlung graphs with an electron line central; the s-channel pairing (the beams
  annihilate) holds the annihilation and conversion graphs.
- e e e e: 6 pairings, 36 diagrams (the exchange of the identical e- and of the identical e+).
- mu mu tau tau: 1 pairing (the beams annihilate), 6 diagrams.

The amplitude of a pairing is ``sum_c bar_c [Ja-slash S(P_L + K_a) Jb-slash + Jb-slash
S(P_L + K_b) Ja-slash] psi_c``, with ``J = bar gamma^mu psi / K^2`` the current of an end line,
``K`` the sum of its outgoing momenta (incoming particles count with ``-p``), ``P_L`` the
outgoing momentum of the central line's barred end and ``S(k) = (kslash + m)/(k^2 - m^2)``.
All graphs have the same couplings (every fermion has charge -1) and the same factors of
``i``, so only the Fermi signs are relative phases. The photon propagators are in Feynman
gauge; a gauge term ``K^mu K^nu`` drops out because every photon ends on a line whose external
legs are on shell (tested with the Ward identity of the two-photon line below).

Z exchange is neglected: at sqrt(s) = 10.58 GeV its amplitude relative to the photon's is
``s / (m_Z^2 - s) ~ 1.4%`` for the annihilation graphs (whose contribution after our filters is
a few per cent of the total: so about 1e-3 of the rate, odd in the angles), and
``|t| / m_Z^2 < 1e-3`` for the t-channel photons of the two-photon graphs that dominate.

Numerics
--------
In the two-photon region ``|t|`` reaches ``m_e^2 v^2 / (1 - v)`` ~ 1e-11 GeV^2 (``v`` the
fractional energy loss of a beam): the scattering angle of the electron is then ~1e-6 rad, and
``t`` and the spinor of that electron cannot be computed from its stored four-momentum (``1 -
cos(theta)`` is lost in rounding). :class:`Kinematics` therefore carries, next to the
momenta, the half-angle factors of every direction and the momentum transfers of the two beam
lines, as the generator computes them from its own variables; :func:`kinematics_from_momenta`
builds them from four-momenta for anything else (tests, other generators).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numba
import numpy as np
from numpy.typing import NDArray

from zprime.errors import ConfigError
from zprime.physics.constants import M_ELECTRON, M_MUON, M_TAU
from zprime.physics.dirac import GAMMA

__all__ = [
    "FINAL_STATES",
    "Kinematics",
    "amplitudes",
    "diagram_count",
    "helicity_sum",
    "kinematics_from_momenta",
    "matrix_element_squared",
    "pairings",
    "two_photon_line_ward",
]

Array = NDArray[np.float64]
CArray = NDArray[np.complex128]

MASSES: dict[str, float] = {"e": M_ELECTRON, "mu": M_MUON, "tau": M_TAU}
"""Lepton masses, GeV (PDG via the ``particle`` package, :mod:`zprime.physics.constants`)."""

FINAL_STATES: dict[str, tuple[str, str]] = {
    "eemumu": ("e", "mu"),
    "eeee": ("e", "e"),
    "eetautau": ("e", "tau"),
    "mumutautau": ("mu", "tau"),
}
"""Supported final states: (flavour of f1 at p3/p4, flavour of f2 at p5/p6)."""

# external legs, all outgoing: 0 u(p1) e- in, 1 vbar(p2) e+ in, 2 ubar(p3), 3 v(p4), 4 ubar(p5),
# 5 v(p6). Barred ends are 1, 2, 4; unbarred ends 0, 3, 5 (reference order of the permutation).
_BARRED = (1, 2, 4)
_UNBARRED = (0, 3, 5)
# gamma^mu with a lower index, for Jslash = J^mu gamma_mu
_GAMMA_LOWER = np.einsum("mn,nab->mab", np.diag([1.0, -1.0, -1.0, -1.0]), GAMMA)


def _flavours(final_state: str) -> tuple[str, ...]:
    if final_state not in FINAL_STATES:
        raise ConfigError(
            f"final_state '{final_state}' is not supported (known: {', '.join(FINAL_STATES)})"
        )
    f1, f2 = FINAL_STATES[final_state]
    return ("e", "e", f1, f1, f2, f2)


def _perm_sign(perm: tuple[int, ...]) -> int:
    sign = 1
    p = list(perm)
    for i in range(len(p)):
        while p[i] != i:
            j = p[i]
            p[i], p[j] = p[j], p[i]
            sign = -sign
    return sign


def pairings(final_state: str) -> list[tuple[int, tuple[tuple[int, int], ...]]]:
    """The fermion-line pairings of a final state: ``(sign, ((barred, unbarred), ...))``.

    Leg indices: 0 e-(p1), 1 e+(p2), 2 f1-(p3), 3 f1+(p4), 4 f2-(p5), 5 f2+(p6).
    """
    flav = _flavours(final_state)
    out = []
    for perm in itertools.permutations(range(3)):
        lines = tuple((_BARRED[i], _UNBARRED[perm[i]]) for i in range(3))
        if all(flav[b] == flav[u] for b, u in lines):
            out.append((_perm_sign(perm), lines))
    return out


def diagram_count(final_state: str) -> int:
    """Number of tree-level Feynman diagrams (6 per pairing)."""
    return 6 * len(pairings(final_state))


@dataclass(frozen=True)
class Kinematics:
    """Momenta of a batch of events in the form the amplitudes need.

    Attributes
    ----------
    p
        (n, 6, 4) physical four-momenta of e-(p1), e+(p2) (incoming) and p3..p6 (outgoing),
        GeV, in one frame.
    cos_half, sin_half
        (n, 6) cos(theta/2) and sin(theta/2) of each momentum's polar angle, computed without
        rounding loss near the z axis (the spinors need them).
    t13, t24
        (n,) ``(p1 - p3)^2`` and ``(p2 - p4)^2`` (negative), exact.
    masses
        (6,) masses of the legs, GeV.
    """

    p: Array
    cos_half: Array
    sin_half: Array
    t13: Array
    t24: Array
    masses: Array


def _half_angles(p: Array) -> tuple[Array, Array]:
    pabs = np.linalg.norm(p[..., 1:], axis=-1)
    safe = np.where(pabs > 0.0, pabs, 1.0)
    pt = np.hypot(p[..., 1], p[..., 2])
    # (|p| + pz) and (|p| - pz) without cancellation: one of them is pt^2 / (the other)
    plus = np.where(
        p[..., 3] >= 0.0, pabs + p[..., 3], pt * pt / np.maximum(pabs - p[..., 3], 1e-300)
    )
    minus = np.where(
        p[..., 3] < 0.0, pabs - p[..., 3], pt * pt / np.maximum(pabs + p[..., 3], 1e-300)
    )
    ch = np.where(pabs > 0.0, np.sqrt(np.clip(plus / (2.0 * safe), 0.0, 1.0)), 1.0)
    sh = np.where(pabs > 0.0, np.sqrt(np.clip(minus / (2.0 * safe), 0.0, 1.0)), 0.0)
    return ch, sh


def _sq(k: Array) -> Array:
    return k[..., 0] ** 2 - k[..., 1] ** 2 - k[..., 2] ** 2 - k[..., 3] ** 2


def kinematics_from_momenta(p: Array, final_state: str) -> Kinematics:
    """:class:`Kinematics` from (n, 6, 4) four-momenta (directions well away from the z axis
    or not: the half angles avoid cancellation, but ``t13``/``t24`` of nearly collinear beams
    lose precision; the generator supplies its own)."""
    p = np.asarray(p, dtype=np.float64)
    masses = np.array([MASSES[f] for f in _flavours(final_state)])
    ch, sh = _half_angles(p)
    return Kinematics(
        p=p,
        cos_half=ch,
        sin_half=sh,
        t13=_sq(p[:, 0] - p[:, 2]),
        t24=_sq(p[:, 1] - p[:, 3]),
        masses=masses,
    )


def _spinors(kin: Kinematics, leg: int) -> CArray:
    """(n, 2, 4) spinors of one leg for helicity index 0 (h = -1) and 1 (h = +1).

    ``u`` for legs 0, 2, 4 (e-(p1) incoming, f-(p3), f-(p5) outgoing: ``ubar`` is taken later),
    ``v`` for legs 1, 3, 5; the conventions of :mod:`zprime.physics.dirac` (HELAS two-spinors, Dirac
    representation), with the half angles of :class:`Kinematics`.
    """
    p = kin.p[:, leg]
    m = kin.masses[leg]
    ch = kin.cos_half[:, leg]
    sh = kin.sin_half[:, leg]
    pt = np.hypot(p[:, 1], p[:, 2])
    on_axis = pt == 0.0
    safe = np.where(on_axis, 1.0, pt)
    eiphi = np.where(on_axis, 1.0, p[:, 1] / safe) + 1j * np.where(on_axis, 0.0, p[:, 2] / safe)
    chi_plus = np.stack([ch + 0j, eiphi * sh], axis=-1)
    chi_minus = np.stack([-np.conj(eiphi) * sh, ch + 0j], axis=-1)
    e = p[:, 0]
    pabs = np.linalg.norm(p[:, 1:], axis=-1)
    a = np.sqrt(e + m)[:, None]
    # sqrt(E - m) = |p| / sqrt(E + m): no cancellation for slow particles
    b = (pabs / np.sqrt(e + m))[:, None]
    out = np.empty((p.shape[0], 2, 4), dtype=np.complex128)
    if leg in (0, 2, 4):  # u(p, h) = (a chi_h, h b chi_h)
        out[:, 0] = np.concatenate([a * chi_minus, -b * chi_minus], axis=-1)
        out[:, 1] = np.concatenate([a * chi_plus, b * chi_plus], axis=-1)
    else:  # v(p, h) = (-h b chi_-h, a chi_-h)
        out[:, 0] = np.concatenate([b * chi_plus, a * chi_plus], axis=-1)
        out[:, 1] = np.concatenate([-b * chi_minus, a * chi_minus], axis=-1)
    return out


def _bar(psi: CArray) -> CArray:
    return np.conj(psi) * np.array([1.0, 1.0, -1.0, -1.0])


_SIGNS = np.array([1.0, -1.0, -1.0, -1.0])


def _slash(j: CArray) -> CArray:
    """J^mu gamma_mu for (..., 4) complex vectors: (..., 4, 4)."""
    return np.einsum("...m,mab->...ab", j, _GAMMA_LOWER)


class _Legs:
    """Spinors and signed outgoing momenta of a batch, shared by every diagram."""

    def __init__(self, kin: Kinematics) -> None:
        self.kin = kin
        spin = [_spinors(kin, leg) for leg in range(6)]
        # barred ends: vbar(p2), ubar(p3), ubar(p5); unbarred: u(p1), v(p4), v(p6)
        self.psi = {leg: (_bar(spin[leg]) if leg in _BARRED else spin[leg]) for leg in range(6)}
        sign = np.array([-1.0, -1.0, 1.0, 1.0, 1.0, 1.0])
        self.out = kin.p * sign[None, :, None]  # outgoing momenta

    def line_k2(self, line: tuple[int, int]) -> Array:
        """K^2 of the photon leaving a line, exact for the two beam-scattering lines."""
        key = tuple(sorted(line))
        if key == (0, 2):
            return self.kin.t13
        if key == (1, 3):
            return self.kin.t24
        return _sq(self.out[:, line[0]] + self.out[:, line[1]])


def _current(legs: _Legs, line: tuple[int, int]) -> CArray:
    """(n, 2, 2, 4) J^mu = bar gamma^mu psi of an end line, axes (h_barred, h_unbarred, mu)."""
    b, u = line
    return np.einsum("nia,mab,njb->nijm", legs.psi[b], GAMMA, legs.psi[u])


def _central(
    legs: _Legs,
    line: tuple[int, int],
    ja: CArray,
    ka: Array,
    jb: CArray,
    kb: Array,
) -> CArray:
    """Both orderings of the central line with end currents ja, jb (already over K^2).

    Returns (n, 2[h_barred_c], 2, 2 [a], 2, 2 [b], 2[h_unbarred_c]).
    """
    first, second = _central_terms(legs, line, ja, ka, jb, kb)
    return first + second


def _central_terms(
    legs: _Legs,
    line: tuple[int, int],
    ja: CArray,
    ka: Array,
    jb: CArray,
    kb: Array,
) -> tuple[CArray, CArray]:
    """The two orderings of :func:`_central` separately (photon a next to the barred end
    first)."""
    b, u = line
    m = legs.kin.masses[b]
    pl = legs.out[:, b]
    sa = _slash(ja)  # (n, 2, 2, 4, 4)
    sb = _slash(jb)
    bar = legs.psi[b]
    psi = legs.psi[u]
    out = []
    n = bar.shape[0]
    psi_t = np.ascontiguousarray(psi.transpose(0, 2, 1))  # (n, 4, 2)
    for swapped, (s1, k1, s2) in enumerate(((sa, ka, sb), (sb, kb, sa))):
        q = pl + k1
        den = _sq(q) - m * m
        prop = _slash(q.astype(np.complex128)) + m * np.eye(4)
        prop = prop / den[:, None, None]
        # bar . s1 . prop -> (n, 2, 2, 2, 4); s2 . psi -> (n, 2, 2, 4, 2); then contract
        m1 = (s1 @ prop[:, None, None]).reshape(n, 4, 4, 4)  # (n, 4[jk], 4, 4)
        left = np.einsum("nia,nJab->niJb", bar, m1).reshape(n, 8, 4)
        right = (s2.reshape(n, 4, 4, 4) @ psi_t[:, None]).transpose(0, 2, 1, 3).reshape(n, 4, 8)
        term = (left @ right).reshape(n, 2, 2, 2, 2, 2, 2)  # (i, j, k, d[4->l m], o)
        if swapped:  # the second ordering has its a and b axes swapped
            term = term.transpose(0, 1, 4, 5, 2, 3, 6)
        out.append(term)
    return out[0], out[1]


def amplitudes(kin: Kinematics, final_state: str) -> CArray:
    """Helicity amplitudes (n, 2, 2, 2, 2, 2, 2), axes legs p1..p6 (index 0: h = -1).

    Without coupling factors: multiply ``|A|^2`` by ``e^8 = (4 pi alpha)^4``.
    """
    legs = _Legs(kin)
    n = kin.p.shape[0]
    total = np.zeros((n,) + (2,) * 6, dtype=np.complex128)
    for sign, lines in pairings(final_state):
        cur = {}
        for line in lines:
            k = legs.out[:, line[0]] + legs.out[:, line[1]]
            cur[line] = (_current(legs, line) / legs.line_k2(line)[:, None, None, None], k)
        for c in range(3):
            central = lines[c]
            a, b = (lines[i] for i in range(3) if i != c)
            (ja, ka), (jb, kb) = cur[a], cur[b]
            t = _central(legs, central, ja, ka, jb, kb)
            total += sign * _to_legs(t, central, a, b)
    return total


def _to_legs(t: CArray, central: tuple[int, int], a: tuple[int, int], b: tuple[int, int]) -> CArray:
    """Transpose a central-line term to the leg order p1..p6."""
    # axes of t: central barred, a barred, a unbarred, b barred, b unbarred, central unbarred
    order = [central[0], a[0], a[1], b[0], b[1], central[1]]
    return t.transpose([0] + [1 + order.index(leg) for leg in range(6)])


# --------------------------------------------------------------------------------------------
# the compiled kernel (numba): the same amplitude, event by event, ~10x faster than numpy's
# small-matrix einsums; tested against :func:`amplitudes`.

_GAMMA_UPPER = np.ascontiguousarray(GAMMA)


@numba.njit(cache=True, fastmath=False)
def _kernel(psi, out, k2, masses, lines, signs, gamma):  # pragma: no cover - compiled
    n = psi.shape[0]
    n_pair = lines.shape[0]
    result = np.zeros(n)
    weight = np.array([32, 16, 8, 4, 2, 1])
    metric = np.array([1.0, -1.0, -1.0, -1.0])
    amp = np.zeros(64, dtype=np.complex128)
    cur = np.zeros((3, 2, 2, 4), dtype=np.complex128)  # lowered J_mu / K^2
    kvec = np.zeros((3, 4))
    bg = np.zeros((2, 4, 4), dtype=np.complex128)  # bar gamma^mu
    gp = np.zeros((2, 4, 4), dtype=np.complex128)  # gamma^mu psi
    lt = np.zeros((2, 2, 2, 4), dtype=np.complex128)
    rt = np.zeros((2, 2, 2, 4), dtype=np.complex128)
    prop = np.zeros((4, 4), dtype=np.complex128)
    tmp = np.zeros(4, dtype=np.complex128)
    for ev in range(n):
        amp[:] = 0.0
        for ip in range(n_pair):
            sgn = signs[ip]
            for il in range(3):
                b = lines[ip, il, 0]
                u = lines[ip, il, 1]
                inv = 1.0 / k2[ev, b, u]
                for mu in range(4):
                    kvec[il, mu] = out[ev, b, mu] + out[ev, u, mu]
                for hb in range(2):
                    for hu in range(2):
                        for mu in range(4):
                            acc = 0.0 + 0.0j
                            for a in range(4):
                                ba = psi[ev, b, hb, a]
                                if ba == 0.0:
                                    continue
                                for c in range(4):
                                    g = gamma[mu, a, c]
                                    if g != 0.0:
                                        acc += ba * g * psi[ev, u, hu, c]
                            cur[il, hb, hu, mu] = acc * metric[mu] * inv
            for ic in range(3):
                bc = lines[ip, ic, 0]
                uc = lines[ip, ic, 1]
                m = masses[bc]
                # bar_c gamma^mu and gamma^mu psi_c
                for h in range(2):
                    for mu in range(4):
                        for c in range(4):
                            acc = 0.0 + 0.0j
                            acc2 = 0.0 + 0.0j
                            for a in range(4):
                                acc += psi[ev, bc, h, a] * gamma[mu, a, c]
                                acc2 += gamma[mu, c, a] * psi[ev, uc, h, a]
                            bg[h, mu, c] = acc
                            gp[h, mu, c] = acc2
                for order in range(2):
                    if ic == 0:
                        la, lb = 1, 2
                    elif ic == 1:
                        la, lb = 0, 2
                    else:
                        la, lb = 0, 1
                    if order == 1:
                        la, lb = lb, la
                    # propagator (qslash + m)/(q^2 - m^2), q = P_L + K_first
                    q0 = out[ev, bc, 0] + kvec[la, 0]
                    q1 = out[ev, bc, 1] + kvec[la, 1]
                    q2 = out[ev, bc, 2] + kvec[la, 2]
                    q3 = out[ev, bc, 3] + kvec[la, 3]
                    den = 1.0 / (q0 * q0 - q1 * q1 - q2 * q2 - q3 * q3 - m * m)
                    for a in range(4):
                        for c in range(4):
                            v = (
                                gamma[0, a, c] * q0
                                - gamma[1, a, c] * q1
                                - gamma[2, a, c] * q2
                                - gamma[3, a, c] * q3
                            )
                            if a == c:
                                v += m
                            prop[a, c] = v * den
                    # left: bar_c Jslash_first prop; right: Jslash_second psi_c
                    for h in range(2):
                        for h1 in range(2):
                            for h2 in range(2):
                                for c in range(4):
                                    acc = 0.0 + 0.0j
                                    acc2 = 0.0 + 0.0j
                                    for mu in range(4):
                                        acc += cur[la, h1, h2, mu] * bg[h, mu, c]
                                        acc2 += cur[lb, h1, h2, mu] * gp[h, mu, c]
                                    tmp[c] = acc
                                    rt[h1, h2, h, c] = acc2
                                for c in range(4):
                                    acc = 0.0 + 0.0j
                                    for a in range(4):
                                        acc += tmp[a] * prop[a, c]
                                    lt[h, h1, h2, c] = acc
                    wbc = weight[bc]
                    wuc = weight[uc]
                    wa1 = weight[lines[ip, la, 0]]
                    wa2 = weight[lines[ip, la, 1]]
                    wb1 = weight[lines[ip, lb, 0]]
                    wb2 = weight[lines[ip, lb, 1]]
                    for h in range(2):
                        for a1 in range(2):
                            for a2 in range(2):
                                base = h * wbc + a1 * wa1 + a2 * wa2
                                for b1 in range(2):
                                    for b2 in range(2):
                                        for hp in range(2):
                                            acc = 0.0 + 0.0j
                                            for c in range(4):
                                                acc += lt[h, a1, a2, c] * rt[b1, b2, hp, c]
                                            amp[base + b1 * wb1 + b2 * wb2 + hp * wuc] += sgn * acc
        total = 0.0
        for i in range(64):
            total += amp[i].real ** 2 + amp[i].imag ** 2
        result[ev] = total
    return result


def _line_k2(legs: _Legs) -> Array:
    """(n, 6, 6) K^2 of every (barred, unbarred) line (only those entries are filled)."""
    n = legs.kin.p.shape[0]
    k2 = np.ones((n, 6, 6))
    for b in _BARRED:
        for u in _UNBARRED:
            k2[:, b, u] = legs.line_k2((b, u))
    return k2


def helicity_sum(kin: Kinematics, final_state: str) -> Array:
    """sum over the 64 helicities of |A|^2 (:func:`amplitudes`), by the compiled kernel."""
    legs = _Legs(kin)
    table = pairings(final_state)
    lines = np.array([lt for _, lt in table], dtype=np.int64)
    signs = np.array([sg for sg, _ in table], dtype=np.float64)
    psi = np.ascontiguousarray(np.stack([legs.psi[leg] for leg in range(6)], axis=1))
    return _kernel(  # type: ignore[no-any-return]
        psi,
        np.ascontiguousarray(legs.out),
        _line_k2(legs),
        np.ascontiguousarray(kin.masses, dtype=np.float64),
        lines,
        signs,
        _GAMMA_UPPER,
    )


def matrix_element_squared(kin: Kinematics, final_state: str, alpha: float) -> Array:
    """Spin-averaged |M|^2 (1/4 over the beam helicities, summed over the final ones).

    Computed by the compiled kernel (:func:`helicity_sum`); :func:`amplitudes` is the numpy
    implementation of the same sum, kept as the readable definition and tested against it.
    """
    e8 = (4.0 * np.pi * alpha) ** 4
    return 0.25 * e8 * helicity_sum(kin, final_state)


def two_photon_line_ward(kin: Kinematics, final_state: str, line: tuple[int, int]) -> Array:
    """Ward identity of the sub-amplitude where photon ``a`` is replaced by its momentum.

    For the pairing containing ``line`` as an end line, the four diagrams in which that line's
    photon attaches to one of the two other lines, with the line's current ``J_a`` replaced by
    its momentum ``K_a``, must sum to zero (gauge invariance: a photon polarisation replaced by
    its momentum; it holds for the two orderings on each line separately). Returns
    ``max |sum| / max |one diagram|`` over the helicities, per event.
    """
    legs = _Legs(kin)
    for _, lines in pairings(final_state):
        if line in lines:
            break
    else:
        raise ValueError(f"line {line} is in no pairing of {final_state}")
    others = [x for x in lines if x != line]
    ka = legs.out[:, line[0]] + legs.out[:, line[1]]
    n = kin.p.shape[0]
    ja = np.broadcast_to(ka.astype(np.complex128)[:, None, None, :], (n, 2, 2, 4))
    total = 0.0
    scale = 0.0
    for c in range(2):
        central, b = others[c], others[1 - c]
        kb = legs.out[:, b[0]] + legs.out[:, b[1]]
        jb = _current(legs, b) / legs.line_k2(b)[:, None, None, None]
        for t in _central_terms(legs, central, ja, ka, jb, kb):
            t = _to_legs(t, central, line, b)
            total = total + t
            scale = np.maximum(scale, np.max(np.abs(t).reshape(n, -1), axis=1))
    return np.max(np.abs(total).reshape(n, -1), axis=1) / scale
