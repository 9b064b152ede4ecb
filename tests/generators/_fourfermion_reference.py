"""Independent reference for the four-fermion matrix element (tests only).

Every Feynman diagram written out by hand with :mod:`zprime.physics.dirac` (explicit Dirac matrices,
its own spinors, a loop over the 64 helicity configurations), with the relative signs of the
e e e e graphs derived from the antisymmetry under the exchange of identical fermions, not
from the permutation signs that :mod:`zprime.generators.fourfermion_me` uses.
"""

from __future__ import annotations

import itertools

import numpy as np

from zprime.physics.dirac import (
    GAMMA,
    current,
    dirac_bar,
    fermion_propagator,
    minkowski_dot,
    u_spinor,
    v_spinor,
)

_GL = np.einsum("mn,nab->mab", np.diag([1.0, -1.0, -1.0, -1.0]), GAMMA)


def _js(j):
    return np.einsum("...m,mab->...ab", j, _GL)


def _two(bar, ja, ka, jb, kb, psi, pl, m):
    """bar [Ja S(pl + ka) Jb + Jb S(pl + kb) Ja] psi."""
    first = _js(ja) @ fermion_propagator(pl + ka, m) @ _js(jb)
    second = _js(jb) @ fermion_propagator(pl + kb, m) @ _js(ja)
    return np.einsum("na,nab,nb->n", bar, first + second, psi)


def _t_set(sp, p, m, i3, i4, i5, i6):
    """The 6 graphs with lines e-(p1)->leg i3, e+(p2)->leg i4 and the pair (i5, i6)."""
    p1, p2 = p[:, 0], p[:, 1]
    q1 = p[:, i3] - p1  # outgoing momentum of the e- line
    q2 = p[:, i4] - p2
    qc = p[:, i5] + p[:, i6]
    ja = current(sp[i3], sp[0]) / minkowski_dot(q1, q1)[:, None]
    jb = current(sp[1], sp[i4]) / minkowski_dot(q2, q2)[:, None]
    jc = current(sp[i5], sp[i6]) / minkowski_dot(qc, qc)[:, None]
    out = _two(sp[i5], ja, q1, jb, q2, sp[i6], p[:, i5], m[i5])
    out = out + _two(sp[i3], jb, q2, jc, qc, sp[0], p[:, i3], m[0])
    return out + _two(sp[1], ja, q1, jc, qc, sp[i4], -p2, m[1])


def _s_set(sp, p, m, i3, i4, i5, i6):
    """The 6 graphs with the beam line (p2, p1) and the pairs (i3, i4), (i5, i6)."""
    p1, p2 = p[:, 0], p[:, 1]
    kd = -(p1 + p2)
    ke = p[:, i3] + p[:, i4]
    kc = p[:, i5] + p[:, i6]
    jd = current(sp[1], sp[0]) / minkowski_dot(kd, kd)[:, None]
    je = current(sp[i3], sp[i4]) / minkowski_dot(ke, ke)[:, None]
    jc = current(sp[i5], sp[i6]) / minkowski_dot(kc, kc)[:, None]
    out = _two(sp[i5], jd, kd, je, ke, sp[i6], p[:, i5], m[i5])
    out = out + _two(sp[1], je, ke, jc, kc, sp[0], -p2, m[1])
    return out + _two(sp[i3], jd, kd, jc, kc, sp[i4], p[:, i3], m[i3])


def reference_me2(p, masses, final_state, alpha):
    """Spin-averaged |M|^2 from the hand-written diagrams (slow: 64 helicity loops)."""
    total = 0.0
    e8 = (4.0 * np.pi * alpha) ** 4
    for hel in itertools.product((-1, 1), repeat=6):
        sp = [
            u_spinor(p[:, 0], masses[0], hel[0]),
            dirac_bar(v_spinor(p[:, 1], masses[1], hel[1])),
            dirac_bar(u_spinor(p[:, 2], masses[2], hel[2])),
            v_spinor(p[:, 3], masses[3], hel[3]),
            dirac_bar(u_spinor(p[:, 4], masses[4], hel[4])),
            v_spinor(p[:, 5], masses[5], hel[5]),
        ]
        if final_state in ("eemumu", "eetautau"):
            amp = _s_set(sp, p, masses, 2, 3, 4, 5) - _t_set(sp, p, masses, 2, 3, 4, 5)
        elif final_state == "mumutautau":
            amp = _s_set(sp, p, masses, 2, 3, 4, 5)
        elif final_state == "eeee":
            amp = (
                _s_set(sp, p, masses, 2, 3, 4, 5)
                - _s_set(sp, p, masses, 2, 5, 4, 3)
                - _t_set(sp, p, masses, 2, 3, 4, 5)
                + _t_set(sp, p, masses, 4, 3, 2, 5)
                + _t_set(sp, p, masses, 2, 5, 4, 3)
                - _t_set(sp, p, masses, 4, 5, 2, 3)
            )
        else:
            raise ValueError(final_state)
        total = total + np.abs(amp) ** 2
    return 0.25 * e8 * total


def random_event(rng, n, masses, sqrt_s):
    """(n, 6, 4) c.m. momenta: beams along z, four final momenta with random directions
    (not a uniform phase-space sample: for matrix-element checks)."""
    m = np.asarray(masses[2:], dtype=float)
    q = rng.normal(size=(n, 4, 3))
    q -= q.mean(axis=1, keepdims=True)
    lo, hi = np.zeros(n), np.full(n, 100.0)
    for _ in range(200):
        x = 0.5 * (lo + hi)
        e = np.sqrt(np.sum((x[:, None, None] * q) ** 2, axis=-1) + m**2).sum(axis=1)
        hi = np.where(e > sqrt_s, x, hi)
        lo = np.where(e <= sqrt_s, x, lo)
    p3 = x[:, None, None] * q
    fin = np.concatenate([np.sqrt(np.sum(p3**2, axis=-1) + m**2)[..., None], p3], axis=-1)
    pb = np.sqrt(0.25 * sqrt_s**2 - masses[0] ** 2)
    beams = np.zeros((n, 2, 4))
    beams[:, :, 0] = 0.5 * sqrt_s
    beams[:, 0, 3] = pb
    beams[:, 1, 3] = -pb
    return np.concatenate([beams, fin], axis=1)
