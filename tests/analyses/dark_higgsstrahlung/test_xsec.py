"""``zprime xsec --analysis dark-higgsstrahlung``: sigma(e+e- -> A' h') against the Born formula
of Batell, Pospelov and Ritz (PRD 79, 115008), B(A' -> mu mu) from the R ratio, and one line
for every impossible point (issue 17)."""

from __future__ import annotations

import json
import sys

import pytest

from zprime import cli
from zprime.analyses.dark_higgsstrahlung.selection import DarkHiggsSelection
from zprime.analyses.dark_higgsstrahlung.xsec import point_xsec, xsec_rows
from zprime.config import DarkHiggsSelectionConfig
from zprime.physics.dark_higgs import br_mumu, sigma_born_fb


def _main(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int | str | None, str, str]:
    monkeypatch.setattr(sys, "argv", ["zprime", *args])
    try:
        cli.main()
        status: int | str | None = 0
    except SystemExit as exc:
        status = exc.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_born_json_is_the_formula(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["xsec", "--analysis", "dark-higgsstrahlung", "--m-aprime", "8", "--m-hdark", "2"]
    status, out, _ = _main([*args, "--born", "--json"], monkeypatch, capsys)
    assert status == 0
    rec = json.loads(out.strip().splitlines()[-1])
    # the note's independent table: 2.70 fb at eps^2 alpha_D = 1e-8 (sqrt(s) = 10.58 GeV)
    assert rec["sigma_fb"] * 1e-8 == pytest.approx(2.70, rel=2e-3)
    assert rec["sigma_fb"] == pytest.approx(sigma_born_fb(8.0, 2.0), rel=1e-12)
    assert rec["br_mumu"] == pytest.approx(float(br_mumu(8.0)), rel=1e-12)
    assert rec["sigma_br_fb"] == pytest.approx(rec["sigma_fb"] * rec["br_mumu"], rel=1e-12)
    assert rec["br_mumu"] == pytest.approx(0.154, rel=0.04)  # DarkCast (docs/dark_higgs_physics.md)


def test_isr_raises_sigma_near_threshold_of_a_soft_hdark() -> None:
    """Far from threshold ISR changes sigma by a few %, for a light h' it enhances it (the
    Born sigma rises towards lower s' there: docs/dark_higgs_physics.md)."""
    heavy = point_xsec(4.0, 3.0)
    light = point_xsec(4.0, 0.5)
    born_heavy = point_xsec(4.0, 3.0, isr=False)
    born_light = point_xsec(4.0, 0.5, isr=False)
    assert heavy["sigma_fb"] / born_heavy["sigma_fb"] == pytest.approx(1.04, abs=0.03)
    assert light["sigma_fb"] / born_light["sigma_fb"] == pytest.approx(1.37, abs=0.05)
    rows = xsec_rows([(4.0, 3.0), (4.0, 0.5)])
    assert [r["sigma_fb"] for r in rows] == [heavy["sigma_fb"], light["sigma_fb"]]


@pytest.mark.parametrize(
    ("ma", "mh", "message"),
    [
        ("4", "5", "error: M_h' = 5 GeV must be below M_A' = 4 GeV"),
        ("8", "3", "error: M_A' + M_h' = 8 + 3 GeV is not below sqrt(s)"),
        ("3.1", "1", "error: M_A' = 3.1 GeV is inside the J/psi(1S) veto"),
        ("-2", "1", "error: M_A' = -2"),
    ],
)
def test_impossible_points_are_one_line(
    ma: str,
    mh: str,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["xsec", "--analysis", "dark-higgsstrahlung", "--m-aprime", ma, "--m-hdark", mh]
    status, _, err = _main(args, monkeypatch, capsys)
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(message), lines[0]


def test_missing_masses_and_unknown_analysis(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = _main(
        ["xsec", "--analysis", "dark-higgsstrahlung", "--m-aprime", "4"], monkeypatch, capsys
    )
    assert (status, err.strip()) == (
        2,
        "error: --analysis dark-higgsstrahlung needs --m-aprime and --m-hdark",
    )
    status, _, err = _main(["xsec", "--analysis", "bogus", "-m", "2"], monkeypatch, capsys)
    assert status == 2
    assert "invisible-zprime, dark-higgsstrahlung or tautau-resonance" in err


def test_configuration_defaults_are_the_selections() -> None:
    """The dark_higgs.selection section and the selection's own defaults cannot drift apart."""
    assert DarkHiggsSelection.from_config(DarkHiggsSelectionConfig()) == DarkHiggsSelection()


def test_run_analysis_option_selects_the_preset(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`zprime run --analysis dark-higgsstrahlung` runs with that search's preset."""
    assert cli._preset_for("dark-higgsstrahlung", None) == "dark_higgsstrahlung"
    assert cli._preset_for("invisible-zprime", "pilot2018") == "pilot2018"
    assert cli._preset_for(None, None) is None
    seen = {}

    def fake_run(cfg, *args, **kwargs):
        seen["cfg"] = cfg

    monkeypatch.setattr(cli, "run", fake_run)
    status, _, _ = _main(
        ["run", "--analysis", "dark-higgsstrahlung", "--out", "unused"], monkeypatch, capsys
    )
    assert status == 0
    assert seen["cfg"].analysis == "dark_higgsstrahlung"
    assert seen["cfg"].luminosity_fb == pytest.approx(8.34)
    status, _, err = _main(["run", "--analysis", "bogus"], monkeypatch, capsys)
    assert status == 2
    assert err.strip() == (
        "error: --analysis bogus: invisible-zprime, dark-higgsstrahlung or tautau-resonance"
    )
