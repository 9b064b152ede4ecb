"""Tests of zprime.analyses.invisible_zprime.hepdata: HEPData submission of the results table."""

from __future__ import annotations

import csv
import io
import json
import math
import tarfile
from pathlib import Path

import pytest
import yaml

from zprime.analyses.invisible_zprime.hepdata import (
    SUBMISSION_ARCHIVE,
    SUBMISSION_DIR,
    pack_workspaces,
    read_results_table,
    validate_hepdata,
    write_hepdata,
)
from zprime.errors import InputError

_BANDS = ("m2", "m1", "", "p1", "p2")
# expected limit = median x these factors (-2, -1, 0, +1, +2 sigma)
_BAND_FACTORS = (0.5, 0.7, 1.0, 1.5, 2.2)


def _limit_columns(prefix: str) -> list[str]:
    return [f"obs_{prefix}"] + [f"exp_{prefix}{'_' + b if b else ''}" for b in _BANDS]


COLUMNS = [
    "width",
    "mass_gev",
    "status",
    "message",
    *_limit_columns("xsec_fb"),
    "sigma_g1_fb",
    "br_inv_vanilla",
    *_limit_columns("gprime_vanilla"),
    *_limit_columns("gprime_invisible"),
    "signal_efficiency",
    "z_local",
    "p0",
    "gof_p",
]

# (width, mass, status, observed xsec, median expected xsec, sigma at g'=1, B vanilla, z_local)
ROWS = [
    ("narrow", 4.0, "ok", 0.30, 0.25, 200.0, 0.40, 1.2),
    ("narrow", 0.5, "ok", 0.80, 0.90, 8000.0, 0.60, 0.0),
    ("narrow", 2.0, "failed", math.nan, math.nan, 900.0, 0.45, math.nan),
    ("narrow", 1.0, "ok", 0.45, 0.50, 3000.0, 0.50, 0.3),
    ("wide", 1.0, "ok", 0.60, 0.70, 2500.0, 1.0, 0.0),
    ("wide", 4.0, "ok", 0.40, 0.35, 150.0, 1.0, 0.8),
]


def _row(width, mass, status, obs, med, sigma_g1, br, z):
    row = {
        "width": width,
        "mass_gev": mass,
        "status": status,
        "message": "" if status == "ok" else "fit did not converge",
        "sigma_g1_fb": sigma_g1,
        "br_inv_vanilla": br,
        "signal_efficiency": 0.1,
        "z_local": z,
        "p0": 0.5 * math.erfc(z / math.sqrt(2.0)),
        "gof_p": 0.4,
    }
    xsec = [obs] + [med * f for f in _BAND_FACTORS]
    for column, value in zip(_limit_columns("xsec_fb"), xsec, strict=True):
        row[column] = value
    for model, b in (("vanilla", br), ("invisible", 1.0)):
        for column, value in zip(_limit_columns(f"gprime_{model}"), xsec, strict=True):
            vanilla_wide = model == "vanilla" and width == "wide"
            row[column] = math.nan if vanilla_wide else math.sqrt(value / (sigma_g1 * b))
    return row


def _write_csv(path: Path, rows: list[dict], columns: list[str] = COLUMNS) -> Path:
    with path.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v != v else v) for k, v in row.items()})  # NaN -> empty
    return path


def _workspace(mass: float) -> dict:
    """A two-bin pyhf workspace with the POI xsec_fb (1 fb of signal = 2 + 1 events)."""
    return {
        "version": "1.0.0",
        "channels": [
            {
                "name": f"M{mass:.4f}",
                "samples": [
                    {
                        "name": "signal",
                        "data": [2.0, 1.0],
                        "modifiers": [{"name": "xsec_fb", "type": "normfactor", "data": None}],
                    },
                    {
                        "name": "background",
                        "data": [10.0, 20.0],
                        "modifiers": [{"name": "bkg_norm", "type": "normfactor", "data": None}],
                    },
                ],
            }
        ],
        "observations": [{"name": f"M{mass:.4f}", "data": [11.0, 19.0]}],
        "measurements": [{"name": "xsec", "config": {"poi": "xsec_fb", "parameters": []}}],
    }


def _workspace_dir(path: Path, masses: list[float]) -> Path:
    path.mkdir()
    for mass in masses:
        (path / f"M{mass:.4f}.json").write_text(json.dumps(_workspace(mass)))
        (path / f"M{mass:.4f}.meta.json").write_text(json.dumps({"mass_gev": mass}))
    return path


def _tables(out_dir: Path) -> dict[str, dict]:
    """Table name -> {'meta': submission.yaml document, 'data': table YAML}."""
    sub = out_dir / SUBMISSION_DIR
    docs = list(yaml.safe_load_all((sub / "submission.yaml").read_text()))
    return {
        doc["name"]: {"meta": doc, "data": yaml.safe_load((sub / doc["data_file"]).read_text())}
        for doc in docs
        if doc and "data_file" in doc
    }


def _dependent(table: dict, prefix: str) -> dict:
    matches = [
        v for v in table["data"]["dependent_variables"] if v["header"]["name"].startswith(prefix)
    ]
    assert len(matches) == 1, prefix
    return matches[0]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """One submission written from the hand-made table (shared: writing takes ~1 s)."""
    base = tmp_path_factory.mktemp("hepdata")
    results = _write_csv(base / "limits.csv", [_row(*r) for r in ROWS])
    (base / "significance.json").write_text(
        json.dumps({"largest_local_z": 1.2, "at_mass_gev": 4.0, "global_p": 0.9})
    )
    ws = _workspace_dir(base / "workspaces_narrow", [0.5, 1.0, 4.0])
    out = base / "hepdata"
    archive = write_hepdata(
        results,
        out,
        workspaces={"narrow": ws},
        luminosity_fb=79.7,
        config_summary={"limits": "cls", "toys": 0, "seed": 3},
    )
    return out, archive


def test_submission_written_and_valid(written):
    out, archive = written
    assert archive == out / SUBMISSION_ARCHIVE
    assert archive.is_file()
    validate_hepdata(out)  # directory and archive
    validate_hepdata(archive)
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(".hepdata.")]
    assert set(_tables(out)) == {
        "Cross-section upper limits (narrow Z')",
        "Cross-section upper limits (Gamma = 0.1 M)",
        "Coupling upper limits, vanilla L_mu - L_tau",
        "Coupling upper limits, fully invisible L_mu - L_tau",
        "Coupling upper limits, fully invisible (Gamma = 0.1 M)",
        "Local significance (narrow Z')",
        "Local significance (Gamma = 0.1 M)",
    }
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"submission.yaml", "workspaces_narrow.tar.gz"} <= names
    assert sum(n.endswith(".yaml") for n in names) == 8


def test_xsec_table_numbers(written):
    out, _ = written
    table = _tables(out)["Cross-section upper limits (narrow Z')"]
    masses = [v["value"] for v in table["data"]["independent_variables"][0]["values"]]
    assert masses == [0.5, 1.0, 4.0]  # sorted; the failed 2 GeV row left out
    assert table["data"]["independent_variables"][0]["header"] == {
        "name": "$M_{Z'}$",
        "units": "GeV",
    }
    ok = sorted((r for r in ROWS if r[0] == "narrow" and r[2] == "ok"), key=lambda r: r[1])
    observed = _dependent(table, "Observed")
    assert observed["header"]["units"] == "fb"
    assert [v["value"] for v in observed["values"]] == pytest.approx([r[3] for r in ok], rel=1e-4)
    expected = _dependent(table, "Expected")
    for value, row in zip(expected["values"], ok, strict=True):
        med = row[4]
        assert value["value"] == pytest.approx(med, rel=1e-4)
        errors = {e["label"]: e["asymerror"] for e in value["errors"]}
        assert med + errors["1 s.d."]["minus"] == pytest.approx(0.7 * med, rel=1e-4)
        assert med + errors["1 s.d."]["plus"] == pytest.approx(1.5 * med, rel=1e-4)
        assert med + errors["2 s.d."]["minus"] == pytest.approx(0.5 * med, rel=1e-4)
        assert med + errors["2 s.d."]["plus"] == pytest.approx(2.2 * med, rel=1e-4)
    qualifiers = {q["name"]: q["value"] for q in observed["qualifiers"]}
    assert qualifiers["SQRT(S)"] == "10.58"
    assert qualifiers["LUMINOSITY"] == "79.7"
    assert qualifiers["CL"] == "90%"
    meta = table["meta"]
    assert "asymptotic" in meta["description"]
    assert "tilde{q}_\\mu" in meta["description"]
    assert "1 failed mass hypotheses left out" in meta["description"]
    keywords = {k["name"]: k["values"] for k in meta["keywords"]}
    assert keywords["reactions"] == ["E+ E- --> MU+ MU- Z'"]
    assert keywords["cmenergies"] == [10.58]
    assert keywords["observables"] == ["SIG"]


def test_coupling_and_significance_tables(written):
    out, _ = written
    tables = _tables(out)
    vanilla = tables["Coupling upper limits, vanilla L_mu - L_tau"]
    ok = sorted((r for r in ROWS if r[0] == "narrow" and r[2] == "ok"), key=lambda r: r[1])
    g_obs = [math.sqrt(r[3] / (r[5] * r[6])) for r in ok]  # g' = sqrt(xsec / (sigma_1 B))
    got = [v["value"] for v in _dependent(vanilla, "Observed")["values"]]
    assert got == pytest.approx(g_obs, rel=1e-4)
    br = [v["value"] for v in _dependent(vanilla, "$\\mathcal{B}")["values"]]
    assert br == pytest.approx([r[6] for r in ok])
    wide_inv = tables["Coupling upper limits, fully invisible (Gamma = 0.1 M)"]
    wide = sorted((r for r in ROWS if r[0] == "wide"), key=lambda r: r[1])
    got = [v["value"] for v in _dependent(wide_inv, "Expected")["values"]]
    assert got == pytest.approx([math.sqrt(r[4] / r[5]) for r in wide], rel=1e-4)
    signif = tables["Local significance (narrow Z')"]
    z = [v["value"] for v in _dependent(signif, "Local significance")["values"]]
    assert z == pytest.approx([r[7] for r in ok])
    assert "Largest local significance 1.20" in signif["meta"]["description"]


def test_workspaces_attached(written):
    out, _ = written
    sub = out / SUBMISSION_DIR
    first = next(yaml.safe_load_all((sub / "submission.yaml").read_text()))
    resources = [r for r in first["additional_resources"] if r.get("type") == "HistFactory"]
    assert len(resources) == 1
    assert resources[0]["location"] == "workspaces_narrow.tar.gz"
    assert "3 workspaces" in resources[0]["description"]
    assert "seed = 3" in first["comment"]
    with tarfile.open(sub / "workspaces_narrow.tar.gz") as tar:
        names = tar.getnames()
        spec = json.load(tar.extractfile("workspaces_narrow/M1.0000.json"))
    assert names[0] == "workspaces_narrow/README.md"
    assert len(names) == 1 + 6
    pyhf = pytest.importorskip("pyhf")
    workspace = pyhf.Workspace(spec)
    assert workspace.model().config.poi_name == "xsec_fb"


def test_pack_workspaces_reproducible(tmp_path):
    ws = _workspace_dir(tmp_path / "ws", [1.0, 2.0])
    a, n = pack_workspaces(ws, tmp_path / "a" / "w.tar.gz", label="narrow", luminosity_fb=79.7)
    b, _ = pack_workspaces(ws, tmp_path / "b" / "w.tar.gz", label="narrow", luminosity_fb=79.7)
    assert n == 2
    assert a.read_bytes() == b.read_bytes()
    with pytest.raises(InputError, match=r"no \.json workspace"):
        pack_workspaces(tmp_path / "a", tmp_path / "c.tar.gz", label="x", luminosity_fb=1.0)


def test_non_numeric_mass_is_one_line_error(tmp_path):
    rows = [_row(*r) for r in ROWS]
    rows[3]["mass_gev"] = "one GeV"
    results = _write_csv(tmp_path / "limits.csv", rows)
    with pytest.raises(InputError) as info:
        write_hepdata(results, tmp_path / "out", workspaces=None, luminosity_fb=79.7)
    message = str(info.value)
    assert "\n" not in message
    assert "row 5" in message
    assert "'mass_gev'" in message
    assert "'one GeV'" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["limits.csv"]


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda rows, cols: cols.remove("exp_xsec_fb_p1"), "missing column 'exp_xsec_fb_p1'"),
        (lambda rows, cols: rows[0].update(width="medium"), "column 'width'"),
        (lambda rows, cols: rows[0].update(obs_xsec_fb=math.nan), "'obs_xsec_fb'"),
        (lambda rows, cols: rows[3].update(mass_gev=4.0), "listed twice"),
    ],
)
def test_bad_tables_are_rejected(tmp_path, edit, match):
    rows = [_row(*r) for r in ROWS]
    cols = list(COLUMNS)
    edit(rows, cols)
    results = _write_csv(tmp_path / "limits.csv", rows, cols)
    with pytest.raises(InputError, match=match):
        read_results_table(results)


def test_parquet_input_and_method_text(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = [_row(*r) for r in ROWS if r[0] == "narrow"]
    table = pa.table({c: [r[c] for r in rows] for c in COLUMNS})
    pq.write_table(table, tmp_path / "limits.parquet")
    write_hepdata(
        tmp_path / "limits.parquet",
        tmp_path / "out",
        workspaces=None,
        luminosity_fb=50.0,
        config_summary={"fit": {"limits": "cls", "toys": 500}},
    )
    tables = _tables(tmp_path / "out")
    assert not [name for name in tables if "Gamma" in name]  # no wide rows, no wide tables
    meta = tables["Cross-section upper limits (narrow Z')"]["meta"]
    assert "500 background-only toys" in meta["description"]
    observed = _dependent(tables["Cross-section upper limits (narrow Z')"], "Observed")
    assert {q["name"]: q["value"] for q in observed["qualifiers"]}["LUMINOSITY"] == "50"


def test_rewrite_replaces_only_own_output(tmp_path):
    results = _write_csv(tmp_path / "limits.csv", [_row(*r) for r in ROWS])
    out = tmp_path / "out"
    write_hepdata(results, out, workspaces=None, luminosity_fb=79.7)
    (out / SUBMISSION_DIR / "stale.yaml").write_text("x: 1\n")
    write_hepdata(results, out, workspaces=None, luminosity_fb=79.7)
    assert not (out / SUBMISSION_DIR / "stale.yaml").exists()  # replaced, not merged
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    with pytest.raises(InputError, match="not replaced"):
        write_hepdata(results, other, workspaces=None, luminosity_fb=79.7)
    assert (other / "notes.txt").read_text() == "keep"


def test_validator_rejection_is_one_line(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "submission.yaml").write_text(
        "---\ncomment: test\n---\nname: T1\ndescription: d\nkeywords: []\ndata_file: t1.yaml\n"
    )
    buffer = io.StringIO()
    yaml.safe_dump(
        {
            "independent_variables": [
                {"header": {"name": "M", "units": "GeV"}, "values": [{"value": 1.0}, {"value": 2}]}
            ],
            "dependent_variables": [
                {"header": {"name": "X", "units": "fb"}, "values": [{"value": 1.0}]}
            ],
        },
        buffer,
    )
    (sub / "t1.yaml").write_text(buffer.getvalue())
    with pytest.raises(InputError) as info:
        validate_hepdata(sub)
    message = str(info.value)
    assert "\n" not in message
    assert "Inconsistent length" in message
    with pytest.raises(InputError, match="no HEPData submission"):
        validate_hepdata(tmp_path / "missing")
