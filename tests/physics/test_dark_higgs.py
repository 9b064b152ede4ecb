"""Tests of zprime.physics.dark_higgs: Born sigma(e+e- -> A' h'), the PDG R table and R(M), the
dark-photon branching fractions, the narrow-resonance veto, sigma x B and its inversion, and the
parser tools/parse_rratio.py."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from zprime.errors import ConfigError, InputError
from zprime.physics import dark_higgs as dh
from zprime.physics.constants import M_ELECTRON, M_MUON, M_PION, M_TAU

ROOT = Path(__file__).resolve().parents[2]


def _parser() -> ModuleType:
    """tools/parse_rratio.py as a module (registered, so that its dataclass works)."""
    name = "zprime_tools_parse_rratio"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / "parse_rratio.py")
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


# --------------------------------------------------------------------------- Born cross section
# The research note (shared/notes/dark-higgsstrahlung-and-tautau.md, section 1.2) computed these
# independently for epsilon^2 alpha_D = 1e-8 at sqrt(s) = 10.58 GeV, alpha = alpha(0), quoting
# 2-3 significant figures; the tolerance is half a unit of the last digit quoted.
# The first entry is the exception: the formula gives 0.3745 fb, which rounds to 0.37, not the
# note's 0.38 (every other entry agrees to < 0.1%): the note's last digit is off, and the
# tolerance there is 0.006.
NOTE_TABLE = [
    ((2.0, 0.0), 0.38, 0.006),
    ((4.0, 0.5), 0.76, 0.005),
    ((4.0, 3.0), 0.61, 0.005),
    ((6.0, 1.0), 1.64, 0.005),
    ((6.0, 4.0), 0.73, 0.005),
    ((8.0, 1.0), 4.01, 0.005),
    ((8.0, 2.0), 2.70, 0.005),
    ((9.7, 0.5), 13.9, 0.05),
    ((10.0, 0.3), 22.9, 0.05),
]


@pytest.mark.parametrize(("masses", "sigma_fb", "tol"), NOTE_TABLE)
def test_sigma_born_matches_research_note(
    masses: tuple[float, float], sigma_fb: float, tol: float
) -> None:
    got = dh.sigma_born_fb(*masses, sqrt_s=10.58, eps2_alpha_d=1e-8)
    assert got == pytest.approx(sigma_fb, abs=tol)


def test_sigma_born_vectorised_and_linear_in_coupling() -> None:
    ma = np.array([p[0][0] for p in NOTE_TABLE])
    mh = np.array([p[0][1] for p in NOTE_TABLE])
    one = dh.sigma_born_fb(ma, mh, sqrt_s=10.58)
    np.testing.assert_allclose(
        dh.sigma_born_fb(ma, mh, sqrt_s=10.58, eps2_alpha_d=3e-8), 3e-8 * one, rtol=1e-12
    )
    np.testing.assert_allclose(1e-8 * one, [p[1] for p in NOTE_TABLE], atol=0.05)


def test_sigma_born_threshold() -> None:
    # near threshold lambda ~ 4 M_A' M_h' (sqrt(s) - M_A' - M_h') ... is linear in the distance
    # d to threshold, so sigma ~ lambda^(1/2) ~ d^(1/2): sigma(d) / sigma(d/4) -> 2
    sqrt_s, mh = 10.58, 1.0
    d = np.array([4e-6, 1e-6])
    sig = dh.sigma_born_fb(sqrt_s - mh - d, mh, sqrt_s=sqrt_s)
    assert sig[0] / sig[1] == pytest.approx(2.0, rel=1e-4)
    # zero at and beyond threshold, positive just below
    assert dh.sigma_born_fb(sqrt_s - mh, mh, sqrt_s=sqrt_s) == 0.0
    assert dh.sigma_born_fb(sqrt_s, 0.5, sqrt_s=sqrt_s) == 0.0
    assert dh.sigma_born_fb(sqrt_s - mh - 1e-3, mh, sqrt_s=sqrt_s) > 0.0


# --------------------------------------------------------------------------- the R table
def test_package_table_matches_raw_file_spot_values() -> None:
    # Values read by eye in the raw PDG file (ShipSoft/FairShip input/rpp2012-hadronicrpp_
    # page1001.dat): (E_cm, code) -> (E_min, E_max, R, stat, norm %, point-to-point % list)
    spots = {
        (1.019, "EXCLSUM 07"): (1.019, 1.019, 48.77336, 1.60523, 0.0, [0.0]),
        (2.6, "BAI 00C"): (
            2.6,
            2.6,
            2.64,
            0.05,
            0.0,
            [2.12, 5.10, 0.06, 0.0, 0.04, 4.10, 0.5, 2.6],
        ),
        (3.774, "RAPIDIS 77"): (3.774, 3.774, 4.59, 0.13, 15.0, [0.0]),
        (7.44, "NICZYPORUK 82"): (7.40, 7.48, 3.37, 0.13, 6.7, [0.0]),
        (9.46, "JAKUBOWSKI 88"): (9.46, 9.46, 3.47, 0.07, 4.6, [0.0]),
        (10.52, "AMMAR 97"): (10.52, 10.52, 3.56, 0.01, 1.60624, [0.0]),
        (11.09, "RICE 82B"): (10.58, 11.60, 3.85, 0.05, 11.18033, [0.0]),
    }
    t = dh.load_rratio_table()
    for (e, code), (lo, hi, r, stat, norm, ptp) in spots.items():
        rows = [i for i in range(len(t)) if abs(t.sqrt_s[i] - e) < 5e-6 and t.code[i] == code]
        assert len(rows) == 1, (e, code)
        i = rows[0]
        assert (t.sqrt_s_min[i], t.sqrt_s_max[i]) == pytest.approx((lo, hi), abs=1e-9)
        assert t.r[i] == pytest.approx(r, abs=1e-9)
        assert t.stat_up[i] == pytest.approx(stat, abs=1e-9)
        assert t.stat_down[i] == pytest.approx(stat, abs=1e-9)
        assert t.norm_frac[i] == pytest.approx(norm / 100.0, abs=1e-9)
        ptp_frac = math.sqrt(sum(p * p for p in ptp)) / 100.0
        assert t.ptp_frac[i] == pytest.approx(ptp_frac, abs=1e-7)
        assert t.syst_frac[i] == pytest.approx(math.hypot(norm / 100.0, ptp_frac), abs=1e-7)
    assert t.reference[t.code.index("AMMAR 97")] == "PR D57, 1350"
    # 694 points between 1.00000 and 11.09000 GeV, in energy order
    assert len(t) == 694
    assert (t.sqrt_s[0], t.r[0]) == (1.0, 1.28743)
    assert t.sqrt_s[-1] == 11.09
    assert np.all(np.diff(t.sqrt_s) >= 0.0)
    header = " ".join(t.header)
    assert "Beringer" in header
    assert "Phys. Rev. D 86, 010001 (2012)" in header
    assert "ShipSoft/FairShip" in header


# Lines copied verbatim from the raw file (full width, trailing blanks included): an EXCLSUM
# point, a point with seven continuation lines of point-to-point systematics, a point with a
# +-10.00% systematic, a point measured over an energy bin, and one above the range kept.
RAW_SNIPPET = """\
*  E(cm)       E(cm)_bin              R          +stat      -stat        norm.(%) 'ShortCode      ' 'Reference      '   sys(ptp,%)+- 'ptp_comment                                                                                                                           '
   1.00000     1.00000    1.00000     1.28743    +0.14038   -0.14038     0.00000  'EXCLSUM 07     ' 'COMPILATION    '   +0.00  +0.00 '                                                                                                                                    '
   2.60000     2.60000    2.60000     2.64000    +0.05000   -0.05000     0.00000  'BAI 00C        ' 'PRL 84, 594    '   +2.12  -2.12 'Luminosity uncertainty + Bhabha background                                                                                          '
                                                                                                                        +5.10  -5.10 'Hadronic selection                                                                                                                  '
                                                                                                                        +0.06  -0.06 'f factor                                                                                                                            '
                                                                                                                        +0.00  +0.00 'TAU-pair background                                                                                                                 '
                                                                                                                        +0.04  -0.04 'Background from Bhabha events                                                                                                       '
                                                                                                                        +4.10  -4.10 'Hadronic efficiency determination                                                                                                   '
                                                                                                                        +0.50  -0.50 'Trigger efficiency                                                                                                                  '
                                                                                                                        +2.60  -2.60 'Radiative corrections                                                                                                               '
   3.67000     3.67000    3.67000     2.19252    +0.15086   -0.15086     0.00000  'SCHINDLER 79   ' 'SLAC-219       '  +10.00 -10.00 '                                                                                                                                    '
  11.09000    10.58000   11.60000     3.85000    +0.05000   -0.05000    11.18033  'RICE 82B       ' 'PRL 48, 906    '   +0.00  +0.00 '                                                                                                                                    '
  12.00000    12.00000   12.00000     3.45000    +0.27000   -0.27000     0.00000  'NAROSKA 87     ' 'PRPL 148, 67   '   +2.40  -2.40 '                                                                                                                                    '
************************************************************************************************************************************
"""  # noqa: E501


def test_parser_reads_the_fixed_format(tmp_path: Path) -> None:
    tool = _parser()
    pts = tool.parse_rratio_text(RAW_SNIPPET, "snippet")
    assert [p.sqrt_s for p in pts] == [1.0, 2.6, 3.67, 11.09, 12.0]
    bai = pts[1]
    assert bai.code == "BAI 00C"
    assert bai.reference == "PRL 84, 594"
    assert bai.ptp_percent == [2.12, 5.10, 0.06, 0.0, 0.04, 4.10, 0.50, 2.60]
    assert pts[2].ptp_percent == [10.0]
    assert (pts[3].sqrt_s_min, pts[3].sqrt_s_max, pts[3].norm_percent) == (10.58, 11.6, 11.18033)
    # trailing blanks stripped (as an editor may do) change nothing
    stripped = "\n".join(line.rstrip() for line in RAW_SNIPPET.splitlines())
    assert tool.parse_rratio_text(stripped) == pts

    raw = tmp_path / "raw.dat"
    raw.write_text(RAW_SNIPPET, encoding="latin-1")
    out = tmp_path / "sub" / "r.csv"
    assert tool.main([str(raw), "--out", str(out), "--source", "a test"]) == 0
    assert not list(out.parent.glob("*.part"))  # the temporary file was renamed
    table = dh.load_rratio_table(out)
    np.testing.assert_array_equal(table.sqrt_s, [1.0, 2.6, 3.67, 11.09])  # 12 GeV cut
    assert table.ptp_frac[1] == pytest.approx(0.0737086, abs=1e-7)
    assert table.syst_frac[2] == pytest.approx(0.10, abs=1e-12)
    assert table.code[3] == "RICE 82B"
    assert any("a test" in h for h in table.header)


def test_parser_rejects_malformed_lines() -> None:
    tool = _parser()
    with pytest.raises(ValueError, match=r"line 1: R 'x\.5' is not a number"):
        tool.parse_rratio_text(RAW_SNIPPET.splitlines()[1].replace("1.28743", "    x.5"))
    with pytest.raises(ValueError, match="systematics line before any point"):
        tool.parse_rratio_text(RAW_SNIPPET.splitlines()[3])
    with pytest.raises(ValueError, match="does not have the PDG R-file format"):
        tool.parse_rratio_text("   1.0 2.0 3.0\n")


def test_load_rratio_table_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        dh.load_rratio_table(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="column line"):
        dh.load_rratio_table(bad)


# --------------------------------------------------------------------------- R(M)
def test_r_continuum_agrees_with_pqcd() -> None:
    # udsc continuum between 5 and 9.4 GeV; pQCD to O(alpha_s^3), alpha_s(M_Z) = 0.1184 (PDG 2012)
    # run at two loops: R_pQCD = 3.53-3.57 here. Tolerance: the points' normalisation errors
    # are 3.8-6.7% (BLINOV 93 3.8%, EDWARDS 90 5.2%, NICZYPORUK 82 6.7% in the table), R(M)
    # carries 3-7%, and pQCD neglects the charm mass (with m_c = 1.5 GeV the Born factor
    # beta (3 - beta^2)/2 lowers R by 2.2% at 5 GeV, 0.2% at 9 GeV): each mass within
    # 2 sigma_R and 5%, the mean over the range within 2%.
    m = np.array([5.0, 5.5, 6.0, 6.5, 7.0, 7.5, 8.0, 8.5, 9.0])
    r = dh.r_ratio(m)
    sig = dh.r_ratio_uncertainty(m)
    pq = dh.r_ratio_pqcd(m)
    assert np.all((pq > 3.52) & (pq < 3.58))
    assert np.all(np.abs(r - pq) < 2.0 * sig)
    assert np.all(np.abs(r / pq - 1.0) < 0.05)
    grid = np.linspace(5.0, 9.4, 200)
    assert np.mean(dh.r_ratio(grid) / dh.r_ratio_pqcd(grid)) == pytest.approx(1.0, abs=0.02)


def test_alpha_s_running() -> None:
    assert dh.alpha_s(dh.M_Z) == pytest.approx(dh.ALPHA_S_MZ, rel=1e-9)
    # the RK4 integration against the exact implicit solution of the two-loop equation
    # da/dt = -(b0 a^2 + b1 a^3), a = alpha_s/(4 pi), t = ln mu^2, five flavours above m_b:
    # t - t0 = [1/(b0 a) + b1/b0^2 ln(a/(b0 + b1 a))] - [the same at a0]
    b0, b1 = 11.0 - 10.0 / 3.0, 102.0 - 190.0 / 3.0

    def g(a: float) -> float:
        return 1.0 / (b0 * a) + b1 / b0**2 * math.log(a / (b0 + b1 * a))

    for mu in (5.0, 8.0, 30.0):
        a = dh.alpha_s(mu) / (4.0 * math.pi)
        a0 = dh.ALPHA_S_MZ / (4.0 * math.pi)
        assert g(a) - g(a0) == pytest.approx(math.log(mu**2 / dh.M_Z**2), abs=1e-7)
    # four flavours below m_b(m_b), continuous there; falling with the scale
    a = dh.alpha_s(np.array([2.0, dh.M_B_MSBAR - 1e-9, dh.M_B_MSBAR + 1e-9, 8.0, 30.0]))
    assert a[1] == pytest.approx(a[2], rel=1e-6)
    assert np.all(np.diff(a) < 0.0)
    # at m_tau: tau-decay determinations give about 0.33 (0.328 +- 0.012, A. Pich and
    # A. Rodriguez-Sanchez, arXiv:1606.07764); two loops from 0.1184 give 0.316
    assert dh.alpha_s(M_TAU) == pytest.approx(0.328, abs=0.03)
    # for five flavours the coefficients are the PDG's 1.409 and -12.77 (non-singlet) and the
    # singlet term -1.240 eta, eta = (1/3)^2 / (3 x 11/9) = 1/33
    a = dh.alpha_s(30.0) / math.pi
    r5 = dh.r_ratio_pqcd(30.0, n_f=5) / (11.0 / 3.0)
    assert r5 == pytest.approx(1.0 + a + 1.409 * a**2 + (-12.77 - 1.240 / 33.0) * a**3, abs=1e-5)


def test_r_domain_and_narrow_resonances() -> None:
    # below 2 m_pi: no hadronic final state (R = 0); 2 m_pi to 1 GeV: not provided (NaN)
    assert dh.r_ratio(0.25) == 0.0
    assert math.isnan(dh.r_ratio(0.5))
    assert math.isnan(dh.r_ratio(11.6))
    assert math.isnan(dh.r_ratio_uncertainty(0.9))
    # the phi(1020) is resolved (R ~ 50 at the peak in the data), the J/psi is not in the data
    assert 45.0 < dh.r_ratio(1.0192) < 52.0
    r_jpsi = dh.r_ratio(np.array([3.0, dh.M_JPSI, 3.2]))
    assert r_jpsi[1] == pytest.approx(2.21, abs=0.02)  # BES: 2.21 at both 3.0 and 3.2 GeV
    # 18 points near psi(2S), Upsilon(1S), Upsilon(2S) are left out of the continuum
    t = dh.load_rratio_table()
    assert int(dh._excluded(t).sum()) == 18
    # the continuum at the Upsilon(1S) sits between its neighbours (no peak)
    r_y = dh.r_ratio(np.array([9.3, dh.M_UPSILON1S, 9.6]))
    assert min(r_y[0], r_y[2]) - 0.1 < r_y[1] < max(r_y[0], r_y[2]) + 0.1
    # uncertainty: a few per cent in the continuum
    m = np.linspace(2.0, 10.6, 300)
    rel = dh.r_ratio_uncertainty(m) / dh.r_ratio(m)
    assert np.all((rel > 0.005) & (rel < 0.12))


# --------------------------------------------------------------------------- widths and B
def test_lepton_width_formula() -> None:
    # M = 1 GeV, eps^2 = 1: alpha/3 (1 + 2x) sqrt(1 - 4x), x = m_mu^2
    x = M_MUON**2
    expect = (1.0 / 137.035999084) / 3.0 * (1.0 + 2.0 * x) * math.sqrt(1.0 - 4.0 * x)
    assert dh.width_lepton_pair(1.0, M_MUON) == pytest.approx(expect, rel=1e-12)
    assert dh.width_lepton_pair(1.0, M_MUON, eps2=1e-6) == pytest.approx(1e-6 * expect, rel=1e-12)
    assert dh.width_lepton_pair(3.0, M_TAU) == 0.0
    widths = dh.partial_widths(5.0, 1e-6)
    assert widths["hadrons"] == pytest.approx(1e-6 / 137.035999084 * 5.0 / 3.0 * dh.r_ratio(5.0))
    assert dh.total_width(5.0, 1e-6) == pytest.approx(sum(widths.values()), rel=1e-12)


def test_branching_fractions_sum_to_one() -> None:
    m = np.concatenate(
        [np.linspace(2.0 * M_MUON + 1e-4, 2.0 * M_PION - 1e-4, 50), np.linspace(1.0, 10.6, 2000)]
    )
    b = dh.branching_fractions(m)
    total = b["ee"] + b["mumu"] + b["tautau"] + b["hadrons"]
    np.testing.assert_allclose(total, 1.0, rtol=1e-12)
    assert np.all(b["tautau"][m < 2.0 * M_TAU] == 0.0)
    assert np.all(b["hadrons"][m < 2.0 * M_PION] == 0.0)
    # between 2 m_pi and 1 GeV R is not provided: NaN, not a number that looks right
    assert math.isnan(dh.br_mumu(0.6))


def test_br_ee_equals_br_mumu_far_above_threshold() -> None:
    # f(x) = (1 + 2x) sqrt(1 - 4x) = 1 - 6x^2 + O(x^3): B_ee / B_mumu = f(x_e) / f(x_mu)
    m = np.array([3.0, 5.0, 8.0, 10.5])
    b = dh.branching_fractions(m)
    ratio = b["ee"] / b["mumu"]

    def f(x: np.ndarray) -> np.ndarray:
        return (1.0 + 2.0 * x) * np.sqrt(1.0 - 4.0 * x)

    np.testing.assert_allclose(ratio, f((M_ELECTRON / m) ** 2) / f((M_MUON / m) ** 2), rtol=1e-12)
    np.testing.assert_allclose(ratio, 1.0, atol=6.0 * (M_MUON / 3.0) ** 4 * 1.01)


# DarkCast (2023 copy) run in the research note, section 3.1 (B(A' -> mu mu) to 3 digits).
DARKCAST_BMUMU = {5.0: 0.158, 6.0: 0.156, 8.0: 0.154}


@pytest.mark.parametrize(("mass", "b_darkcast"), sorted(DARKCAST_BMUMU.items()))
def test_br_mumu_against_darkcast(mass: float, b_darkcast: float) -> None:
    # DarkCast's R above 2 GeV is its light-quark part frozen at 2 GeV plus c, b quarks without
    # QCD corrections (alpha_s/pi ~ 6%): R 3.50 at 8 GeV against 3.66 from the data. With
    # dB/B = -B_had dR/R (B_had = 0.55) a 6% difference in R is 3.3% in B: tolerance 4%, the
    # paper's theory uncertainty on B.
    assert dh.br_mumu(mass) == pytest.approx(b_darkcast, rel=0.04)


def test_br_mumu_uncertainty_from_r() -> None:
    m = np.array([2.0, 5.0, 8.0, 10.5])
    b = dh.branching_fractions(m)
    r = dh.r_ratio(m)
    expect = b["mumu"] * b["hadrons"] / r * dh.r_ratio_uncertainty(m)
    np.testing.assert_allclose(dh.br_mumu_uncertainty(m), expect, rtol=1e-12)
    # below the paper's 4% above 3 GeV
    assert np.all(dh.br_mumu_uncertainty(m[1:]) / b["mumu"][1:] < dh.BR_MUMU_REL_UNCERTAINTY)
    assert dh.BR_MUMU_REL_UNCERTAINTY == 0.04


# --------------------------------------------------------------------------- veto
def test_resonance_veto_mask_and_check() -> None:
    hw = dh.DEFAULT_VETO_HALF_WIDTH_GEV
    assert hw == 0.05
    m = np.array([dh.M_JPSI, dh.M_JPSI + 0.049, dh.M_JPSI + 0.051, 5.0, dh.M_UPSILON3S - 0.03])
    np.testing.assert_array_equal(dh.in_resonance_veto(m), [True, True, False, False, True])
    assert dh.in_resonance_veto(dh.M_PSI2S + 0.02, 0.01) is False
    # per-resonance half-widths; missing names take the default
    mask = dh.in_resonance_veto([dh.M_JPSI + 0.02, dh.M_PSI2S + 0.02], {"J/psi(1S)": 0.01})
    np.testing.assert_array_equal(mask, [False, True])
    dh.check_aprime_mass([3.0, 3.2, 9.0])
    with pytest.raises(ConfigError, match=r"M_A' = 9.47 GeV is inside the Upsilon\(1S\) veto"):
        dh.check_aprime_mass([9.0, 9.47])
    with pytest.raises(ConfigError, match="unknown resonance 'Upsilon'"):
        dh.in_resonance_veto(9.0, {"Upsilon": 0.1})
    with pytest.raises(ConfigError, match="half-width"):
        dh.in_resonance_veto(9.0, float("nan"))


# --------------------------------------------------------------------------- sigma x B, limits
def test_sigma_times_br_and_limit_round_trip() -> None:
    ma = np.array([2.0, 4.0, 6.0, 8.0, 9.7])
    mh = np.array([0.0, 0.5, 4.0, 1.0, 0.5])
    sxb = dh.sigma_times_br_fb(ma, mh, 2e-8)
    np.testing.assert_allclose(sxb, 2e-8 * dh.sigma_born_fb(ma, mh) * dh.br_mumu(ma), rtol=1e-12)
    lim = dh.eps2_alpha_d_limit(sxb, ma, mh)
    np.testing.assert_allclose(lim, 2e-8, rtol=1e-12)
    # the note's consistency check: 3.6 fb at M_A' = 9.7 GeV is eps^2 alpha_D ~ 1.7e-8
    assert dh.eps2_alpha_d_limit(3.6, 9.7, 0.5, sqrt_s=10.58) == pytest.approx(1.7e-8, rel=0.03)
    # an analysis's own (e.g. ISR-corrected) sigma at eps^2 alpha_D = 1 replaces the Born one
    own = np.full(ma.shape, 2.0e8)
    np.testing.assert_allclose(
        dh.eps2_alpha_d_limit(5.0, ma, mh, sigma_fb=own), 5.0 / (2.0e8 * dh.br_mumu(ma))
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: dh.check_masses(5.0, 5.0), r"M_h' = 5 GeV must be below M_A' = 5 GeV"),
        (lambda: dh.check_masses(8.0, 3.0), r"M_A' \+ M_h' = 8 \+ 3 GeV is not below sqrt\(s\)"),
        (lambda: dh.check_masses(-1.0, 0.0), r"M_A' = -1.0 GeV is not a mass"),
        (lambda: dh.check_masses(5.0, np.inf), r"M_h' = inf GeV is not a mass"),
        (lambda: dh.check_masses(0.5, 0.1), r"M_A' = 0.5 GeV is below 1 GeV"),
        (lambda: dh.check_masses(0.2, 0.0), r"M_A' = 0.2 GeV is below the mu mu threshold"),
        (lambda: dh.check_masses(3.1, 1.0), r"M_A' = 3.1 GeV is inside the J/psi\(1S\) veto"),
        (lambda: dh.check_masses([4.0, 5.0], [1.0, 2.0, 3.0]), "do not broadcast"),
        (lambda: dh.sigma_times_br_fb(5.0, 1.0, -1e-8), r"epsilon\^2 alpha_D = -1e-08"),
        (lambda: dh.sigma_times_br_fb(5.0, 1.0, np.nan), r"epsilon\^2 alpha_D = nan"),
        (lambda: dh.eps2_alpha_d_limit(0.0, 5.0, 1.0), r"sigma x B limit = 0.0 fb"),
        (lambda: dh.eps2_alpha_d_limit(1.0, 5.0, 1.0, sigma_fb=-2.0), r"= -2.0 fb"),
        (lambda: dh.r_ratio("x"), "must be a number"),
    ],
)
def test_bad_input_messages(call, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        call()
    assert "\n" not in str(err.value)
