"""ISR validation: the reduced-mass spectrum of e+e- -> mu+ mu- from zprime's structure-function
convolution against Pythia 8's lepton PDF + QED shower.

Pythia settings: /work/shared/notes/generators-and-detector.md section 1.2 (a)
(``WeakSingleBoson:ffbar2gmZ``, ``WeakZ0:gmZmode = 1``, ``23:mMin = 0.3``,
``PhaseSpace:mHatMin = 0.3``, asymmetric 7/4 GeV beams with ``Beams:frameType = 2``); that note
measured 31% of the events below mHat = 10 GeV and 16% below 5 GeV.

zprime side: the Born cross section of e+e- -> gamma* -> mu+ mu- with the muon mass,
sigma(s') = 4 pi alpha^2 / (3 s') * b (3 - b^2) / 2 with b = sqrt(1 - 4 m_mu^2 / s'), convolved
with the two-leg Kuraev-Fadin structure function of :mod:`zprime.generators.isr`, sampled exactly as
the
signal generator samples it (``sample_energy_loss``). Pythia runs alpha_EM with the scale
(its ``coupSM.alphaEM(sHat)``); to compare the ISR alone, the zprime Born is shown both with a
fixed alpha and with Pythia's running alpha(s').

Run: ``python benchmarks/bench_isr_vs_pythia.py [--events N]`` (prints a table). The slow test
``tests/generators/test_signal.py::test_isr_spectrum_matches_pythia`` imports this module.
"""

from __future__ import annotations

import argparse
import itertools
import math
import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from zprime.generators.backgrounds import PYTHIA_BEAM_SETTINGS
from zprime.generators.isr import sample_energy_loss
from zprime.physics.constants import ALPHA_0, GEV2_TO_FB, M_MUON, S

MHAT_MIN = 0.3
EDGES = np.array([0.3, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 10.3, 10.5, 10.5831])

PYTHIA_SETTINGS = (
    *PYTHIA_BEAM_SETTINGS,
    "WeakSingleBoson:ffbar2gmZ = on",
    "WeakZ0:gmZmode = 1",
    "23:onMode = off",
    "23:onIfAny = 13",
    f"23:mMin = {MHAT_MIN}",
    f"PhaseSpace:mHatMin = {MHAT_MIN}",
)


@dataclass
class Spectrum:
    """A normalised mHat spectrum and its fractions."""

    label: str
    sigma_nb: float
    fractions: NDArray[np.float64]
    """Fraction of the cross section in each EDGES bin."""
    errors: NDArray[np.float64]
    """Statistical uncertainty of each fraction."""
    below10: float
    below5: float


def pythia_spectrum(n: int, seed: int = 12345) -> tuple[Spectrum, object]:
    """Pythia 8 mHat spectrum (n events) and the Pythia object (for alphaEM)."""
    import awkward as ak
    import pythia8mc

    py = pythia8mc.Pythia("", False)
    for line in (*PYTHIA_SETTINGS, f"Random:seed = {seed}"):
        if not py.readString(line):
            raise RuntimeError(f"Pythia refused {line!r}")
    if not py.init():
        raise RuntimeError("Pythia init failed")
    mh_parts = []
    left = n
    while left > 0:
        k = min(left, 200_000)
        ev = py.nextBatch(k, errorMode="skip")
        mh_parts.append(ak.to_numpy(ev.info.mHat))
        left -= k
    mh = np.concatenate(mh_parts)
    sigma_nb = py.infoPython().sigmaGen() * 1e6
    counts, _ = np.histogram(mh, EDGES)
    frac = counts / len(mh)
    err = np.sqrt(frac * (1.0 - frac) / len(mh))
    return (
        Spectrum(
            "Pythia 8 (lepton PDF + QED shower)",
            sigma_nb,
            frac,
            err,
            float(np.mean(mh < 10.0)),
            float(np.mean(mh < 5.0)),
        ),
        py,
    )


def born_mumu_nb(
    s_hat: NDArray[np.float64], alpha: NDArray[np.float64] | float
) -> NDArray[np.float64]:
    """Born sigma(e+e- -> gamma* -> mu+ mu-) in nb with the muon mass (zero below threshold)."""
    b2 = np.clip(1.0 - 4.0 * M_MUON**2 / s_hat, 0.0, None)
    b = np.sqrt(b2)
    return (
        4.0
        * math.pi
        * np.asarray(alpha) ** 2
        / (3.0 * s_hat)
        * b
        * (3.0 - b2)
        / 2.0
        * (GEV2_TO_FB * 1e-6)
    )


def structure_function_spectrum(
    n: int,
    rng: np.random.Generator,
    alpha_of_s: object | None = None,
    alpha: float = ALPHA_0,
    label: str = "zprime structure function",
) -> Spectrum:
    """mHat spectrum of the Born convolved with zprime.generators.isr (n weighted points).

    ``alpha_of_s``: a callable alpha(s') (e.g. Pythia's running alphaEM); default fixed ``alpha``.
    """
    w_all = np.zeros(len(EDGES) - 1)
    w2_all = np.zeros(len(EDGES) - 1)
    tot = 0.0
    left = n
    while left > 0:
        k = min(left, 1_000_000)
        v1, w1 = sample_energy_loss(rng.random(k), S)
        v2, w2 = sample_energy_loss(rng.random(k), S)
        s_hat = (1.0 - v1) * (1.0 - v2) * S
        ok = s_hat > MHAT_MIN**2
        a = alpha if alpha_of_s is None else np.vectorize(alpha_of_s)(s_hat[ok])
        w = np.zeros(k)
        w[ok] = w1[ok] * w2[ok] * born_mumu_nb(s_hat[ok], a)
        mh = np.sqrt(s_hat)
        w_all += np.histogram(mh, EDGES, weights=w)[0]
        w2_all += np.histogram(mh, EDGES, weights=w * w)[0]
        tot += w.sum()
        left -= k
    sigma = tot / n
    frac = w_all / tot
    err = np.sqrt(w2_all) / tot
    cum = np.cumsum(frac)
    i10 = int(np.searchsorted(EDGES, 10.0)) - 1
    i5 = int(np.searchsorted(EDGES, 5.0)) - 1
    return Spectrum(label, sigma, frac, err, float(cum[i10]), float(cum[i5]))


def _radiator(v: float, b: float) -> float:
    """Combined two-leg O(beta) radiator W(v) (zprime.generators.isr.radiator with a given beta)."""
    return b * v ** (b - 1.0) * (1.0 + 0.75 * b) - b * (1.0 - 0.5 * v)


def radiator_spectrum(alpha_of_s: object, scale: str = "s", label: str | None = None) -> Spectrum:
    """mHat spectrum from the one-dimensional radiator convolution (quadrature, no MC).

    ``scale="s"``: the structure-function logarithm at the nominal s, as zprime.generators.isr uses
    it.
    ``scale="shat"``: at Q^2 = s', Pythia's default factorisation scale of a 2 -> 1 process
    (``SigmaProcess:factorScale1 = 1``, the squared resonance mass).
    """
    from scipy.integrate import quad

    from zprime.generators.isr import beta_isr

    b_s = beta_isr(S)
    v_max = 1.0 - MHAT_MIN**2 / S

    def dens(v: float) -> float:
        s_hat = (1.0 - v) * S
        b = b_s if scale == "s" else beta_isr(s_hat)
        alpha = float(alpha_of_s(s_hat))  # type: ignore[operator]
        return _radiator(v, b) * float(born_mumu_nb(np.array(s_hat), alpha))

    def integral(lo: float, hi: float) -> float:
        # v = y**(1/beta_s) absorbs the v^(beta - 1) singularity at v = 0
        cut = 1e-2
        val = 0.0
        if lo < cut:
            top = min(hi, cut)

            def f(y: float) -> float:
                return dens(y ** (1.0 / b_s)) * y ** (1.0 / b_s - 1.0) / b_s

            val += quad(f, lo**b_s, top**b_s, limit=200, epsabs=0.0, epsrel=1e-9)[0]
        if hi > cut:
            val += quad(dens, max(lo, cut), hi, limit=200, epsabs=0.0, epsrel=1e-9)[0]
        return val

    v_of_m = lambda m: max(0.0, 1.0 - m * m / S)  # noqa: E731
    parts = np.array([integral(v_of_m(hi), v_of_m(lo)) for lo, hi in itertools.pairwise(EDGES)])
    tot = float(parts.sum())
    frac = parts / tot
    return Spectrum(
        label or f"zprime radiator, Q^2 = {scale}",
        tot,
        frac,
        np.zeros_like(frac),
        integral(v_of_m(10.0), v_max) / tot,
        integral(v_of_m(5.0), v_max) / tot,
    )


def compare(n_pythia: int, n_sf: int, seed: int = 1) -> dict[str, Spectrum]:
    """All spectra: Pythia, zprime's MC convolution, radiator at Q^2 = s and at Q^2 = s'.

    Every zprime variant uses Pythia's running alpha(s') in the Born cross section, so that only
    the ISR treatment differs.
    """
    py_spec, py = pythia_spectrum(n_pythia, seed=12345 + seed)
    alpha_run = py.coupSM.alphaEM  # type: ignore[attr-defined]
    rng = np.random.default_rng(seed)
    return {
        "pythia": py_spec,
        "mc": structure_function_spectrum(
            n_sf, rng, alpha_of_s=alpha_run, label="zprime SF (MC, as the signal), Q^2 = s"
        ),
        "rad_s": radiator_spectrum(alpha_run, "s", "zprime radiator (quad), Q^2 = s"),
        "rad_shat": radiator_spectrum(alpha_run, "shat", "zprime radiator (quad), Q^2 = s'"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=400_000, help="Pythia events")
    parser.add_argument("--points", type=int, default=4_000_000, help="structure-function points")
    args = parser.parse_args()
    t0 = time.perf_counter()
    spectra = compare(args.events, args.points)
    dt = time.perf_counter() - t0
    py_spec = spectra["pythia"]
    print(f"e+e- -> mu+ mu-, mHat > {MHAT_MIN} GeV, sqrt(s) = {math.sqrt(S):.4f} GeV")
    print(f"{'':42s} {'sigma [nb]':>10s} {'f(<10 GeV)':>11s} {'f(<5 GeV)':>10s}")
    for sp in spectra.values():
        print(f"{sp.label:42s} {sp.sigma_nb:10.4f} {sp.below10:11.4f} {sp.below5:10.4f}")
    print()
    print("fraction of the cross section per mHat bin; ratios to Pythia (stat. error of Pythia)")
    cols = ("mc", "rad_s", "rad_shat")
    print(
        f"{'mHat bin [GeV]':>16s} {'Pythia':>8s} {'+-':>6s} " + " ".join(f"{c:>9s}" for c in cols)
    )
    for i in range(len(EDGES) - 1):
        fp = py_spec.fractions[i]
        ratios = " ".join(f"{spectra[c].fractions[i] / fp:9.3f}" for c in cols)
        print(
            f"{EDGES[i]:7.2f}-{EDGES[i + 1]:7.2f}  {fp:8.5f} {py_spec.errors[i] / fp:6.3f} {ratios}"
        )
    print(f"\n({args.events} Pythia events, {args.points} structure-function points, {dt:.1f} s)")


if __name__ == "__main__":
    main()
