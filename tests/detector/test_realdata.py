"""Real data through a column map: ROOT and Parquet ntuples with their own names, units and
layouts map back onto the reconstructed schema and give the selection results of the original."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import uproot
import yaml

from zprime.analyses.invisible_zprime.selection import CHANNELS, select_file, step_masks
from zprime.config import default_config
from zprime.detector import realdata
from zprime.detector.realdata import (
    COLUMNS,
    check_observed,
    convert_observed,
    load_column_map,
    read_observed,
)
from zprime.detector.simulation import VARIABLE_COLUMNS, simulate, validate_reco_events
from zprime.errors import ConfigError, InputError
from zprime.generators.backgrounds import generate_sample
from zprime.generators.signal import write_signal
from zprime.io.events import read_events, read_metadata, write_events

SELECTION = default_config().selection.model_copy(update={"disabled": ["punzinet"]})


@pytest.fixture(scope="module")
def reco() -> ak.Array:
    """Our own simulation: Z' (2 GeV) signal, e+e- -> e+e- mu+mu- and Bhabha events (with
    photons, electrons, events with fewer than two tracks), through the nominal detector."""
    with tempfile.TemporaryDirectory() as d:
        cols = ["event", "weight", "particles"]
        sig = write_signal(2.0, 400, d, seed=21, executor="serial", progress=False)
        parts = [read_events(sig, cols)]
        for name, n in (("eemumu", 1500), ("ee", 300)):
            path = generate_sample(name, n, d, seed=22, executor="serial", progress=False)
            parts.append(read_events(path)[cols])
        events = ak.concatenate(parts)
    out = simulate(events, "simulation", np.random.default_rng(23))
    return ak.with_field(out, np.arange(len(out), dtype=np.int64), "event")


def _masks(events: ak.Array) -> dict[str, dict[str, np.ndarray]]:
    return {ch: step_masks(events, SELECTION, ch) for ch in CHANNELS}


def _assert_same_selection(a: ak.Array, b: ak.Array) -> None:
    ma, mb = _masks(a), _masks(b)
    for ch in CHANNELS:
        for step, mask in ma[ch].items():
            np.testing.assert_array_equal(mb[ch][step], mask, err_msg=f"{ch}/{step}")
    for col in VARIABLE_COLUMNS:
        np.testing.assert_allclose(
            ak.to_numpy(b[col]), ak.to_numpy(a[col]), rtol=2e-7, atol=1e-9, err_msg=col
        )


def _write_map(path: Path, content: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(content))
    return path


# a basf2-like ntuple: doubles everywhere, MeV momenta, mm impact parameters, jagged branches
_JAGGED_MAP = {
    "tree": "ntuple",
    "columns": {
        "event": "__event__",
        "period": "year",
        "trg_two_track": "L1_2trk",
        "trg_bhabha_veto": "L1_bha",
        "trg_ecl": "L1_ecl",
        "ecl_energy": "E_ecl",
        "tracks.px": "trk_px",
        "tracks.py": "trk_py",
        "tracks.pz": "trk_pz",
        "tracks.charge": "trk_q",
        "tracks.muon_id": "trk_muid",
        "tracks.electron_id": "trk_eid",
        "tracks.d0": "trk_dr",
        "tracks.z0": "trk_dz * 10",  # an expression: the branch is in cm/10
        "photons.e": "gam_E",
        "photons.px": "gam_px",
        "photons.py": "gam_py",
        "photons.pz": "gam_pz",
    },
    "units": {
        "tracks.px": "MeV",
        "tracks.py": "MeV",
        "tracks.pz": "MeV",
        "tracks.d0": "mm",
    },
}


def _basf2_like(reco: ak.Array) -> dict[str, Any]:
    t, g = reco["tracks"], reco["photons"]

    def f64(x: Any) -> Any:
        return ak.values_astype(x, np.float64)

    return {
        "__event__": ak.to_numpy(reco["event"]),
        "year": ak.to_numpy(reco["period"]).astype(np.float64),
        "L1_2trk": ak.to_numpy(reco["trg_two_track"]).astype(np.float64),
        "L1_bha": ak.to_numpy(reco["trg_bhabha_veto"]).astype(np.float64),
        "L1_ecl": ak.to_numpy(reco["trg_ecl"]).astype(np.float64),
        "E_ecl": ak.to_numpy(reco["ecl_energy"]),
        "trk_px": t.px * 1000.0,
        "trk_py": t.py * 1000.0,
        "trk_pz": t.pz * 1000.0,
        "trk_q": f64(t.charge),
        "trk_muid": t.muon_id,  # float32, as in the schema
        "trk_eid": t.electron_id,
        "trk_dr": f64(t.d0) * 10.0,
        "trk_dz": f64(t.z0) / 10.0,
        "gam_E": g.e,
        "gam_px": g.px,
        "gam_py": g.py,
        "gam_pz": g.pz,
    }


def _write_root(path: Path, branches: dict[str, Any], tree: str = "ntuple") -> Path:
    with uproot.recreate(path) as f:
        types = {k: ak.Array(v).type for k, v in branches.items()}
        f.mktree(tree, {k: (t.content if hasattr(t, "content") else t) for k, t in types.items()})
        f[tree].extend(branches)
    return path


def test_columns_table_is_consistent() -> None:
    required = {n for n, c in COLUMNS.items() if c.required}
    assert required == {
        "trg_two_track",
        "tracks.px",
        "tracks.py",
        "tracks.pz",
        "tracks.charge",
        "tracks.muon_id",
        "tracks.d0",
        "tracks.z0",
    }


def test_root_jagged_round_trip(reco: ak.Array, tmp_path: Path) -> None:
    root = _write_root(tmp_path / "data.root", _basf2_like(reco))
    cmap = _write_map(tmp_path / "map.yaml", _JAGGED_MAP)
    data = read_observed(root, cmap)
    validate_reco_events(data)
    assert len(data) == len(reco)
    np.testing.assert_array_equal(ak.to_numpy(data["event"]), ak.to_numpy(reco["event"]))
    assert ak.all(data["weight"] == 1.0)
    assert ak.all(ak.flatten(data["tracks"]["true_pdg"]) == 0)
    for col in ("period", "trg_two_track", "trg_bhabha_veto", "trg_ecl", "n_tracks", "n_photons"):
        np.testing.assert_array_equal(ak.to_numpy(data[col]), ak.to_numpy(reco[col]), col)
        assert data[col].type.content == reco[col].type.content, col
    for f in ("charge", "muon_id", "electron_id", "d0", "z0"):
        assert data["tracks"][f].type.content == reco["tracks"][f].type.content, f
    np.testing.assert_allclose(
        ak.to_numpy(ak.flatten(data["tracks"]["d0"])),
        ak.to_numpy(ak.flatten(reco["tracks"]["d0"])),
        rtol=1e-6,
    )
    _assert_same_selection(reco, data)
    passed = step_masks(data, SELECTION, "mumu")
    n_pass = np.logical_and.reduce(list(passed.values())).sum()
    assert n_pass > 50  # the comparison covers selected events


def test_parquet_two_track_slots_and_nested_photons(reco: ak.Array, tmp_path: Path) -> None:
    """Flat per-track branches (mu1_*, mu2_*) padded with NaN, a track count, and the photons
    as a nested list column: events with more than two tracks are left out."""
    # events with three tracks: 40 two-track events with their first track repeated
    extra = reco[ak.num(reco["tracks"]) == 2][:40]
    three = ak.concatenate([extra["tracks"], extra["tracks"][:, :1]], axis=1)
    extra = ak.with_field(ak.with_field(extra, three, "tracks"), ak.num(three), "n_tracks")
    reco = ak.concatenate([reco, extra])
    t = ak.pad_none(reco["tracks"], 2, axis=1, clip=True)
    cols: dict[str, Any] = {
        "evt": ak.to_numpy(reco["event"]),
        "ntrk": ak.to_numpy(reco["n_tracks"]),
    }
    for k in (0, 1):
        for f in ("px", "py", "pz", "charge", "muon_id", "electron_id", "d0", "z0"):
            cols[f"mu{k + 1}_{f}"] = ak.to_numpy(ak.fill_none(t[f][:, k], np.nan)).astype(
                np.float64
            )
    cols["trg"] = ak.to_numpy(reco["trg_two_track"]).astype(np.int8)
    cols["gammas"] = ak.zip(
        {
            "E": reco["photons"].e,
            "x": reco["photons"].px,
            "y": reco["photons"].py,
            "z": reco["photons"].pz,
        }
    )
    path = tmp_path / "data.parquet"
    pq.write_table(ak.to_arrow_table(ak.zip(cols, depth_limit=1)), path)
    columns = {
        "event": "evt",
        "n_tracks": "ntrk",
        "trg_two_track": "trg",
        "photons.e": "gammas.E",
        "photons.px": "gammas.x",
        "photons.py": "gammas.y",
        "photons.pz": "gammas.z",
    }
    for f in ("px", "py", "pz", "charge", "muon_id", "electron_id", "d0", "z0"):
        columns[f"tracks.{f}"] = [f"mu1_{f}", f"mu2_{f}"]
    cmap = _write_map(tmp_path / "map.yaml", {"columns": columns, "constants": {"period": 2020}})
    data = read_observed(path, cmap)
    n_tracks = ak.to_numpy(reco["n_tracks"])
    kept = n_tracks <= 2
    assert (~kept).sum() >= 40  # the sample has events with more tracks
    assert (n_tracks < 2).sum() > 5  # and with fewer
    assert len(data) == kept.sum()
    assert ak.all(data["period"] == 2020)
    np.testing.assert_array_equal(ak.to_numpy(data["n_tracks"]), n_tracks[kept])
    _assert_same_selection(reco[kept], data)
    # the events left out fail the exactly-two-tracks step anyway
    assert not step_masks(reco[~kept], SELECTION)["two_tracks"].any()


def test_photon_veto_variables_without_a_photon_list(reco: ak.Array, tmp_path: Path) -> None:
    cols = {
        "px": reco["tracks"].px,
        "py": reco["tracks"].py,
        "pz": reco["tracks"].pz,
        "q": reco["tracks"].charge,
        "muid": reco["tracks"].muon_id,
        "dr": reco["tracks"].d0,
        "dz": reco["tracks"].z0,
        "trg": reco["trg_two_track"],
        "egam": reco["e_photons"],
        "angle_deg": np.degrees(ak.to_numpy(reco["min_angle_photon_recoil"])),
    }
    path = tmp_path / "veto.parquet"
    pq.write_table(ak.to_arrow_table(ak.zip(cols, depth_limit=1)), path)
    columns = {
        "tracks.px": "px",
        "tracks.py": "py",
        "tracks.pz": "pz",
        "tracks.charge": "q",
        "tracks.muon_id": "muid",
        "tracks.d0": "dr",
        "tracks.z0": "dz",
        "trg_two_track": "trg",
        "e_photons": "egam",
        "min_angle_photon_recoil": "angle_deg",
    }
    cmap = _write_map(
        tmp_path / "map.yaml", {"columns": columns, "units": {"min_angle_photon_recoil": "deg"}}
    )
    data = read_observed(path, cmap)
    assert ak.all(data["n_photons"] == 0)
    a = step_masks(reco, SELECTION, "mumu")
    b = step_masks(data, SELECTION, "mumu")
    for step in a:
        np.testing.assert_array_equal(b[step], a[step], step)
    # no photon list: the reversed photon veto of the mu mu gamma control sample selects nothing
    assert not step_masks(data, SELECTION, "mumugamma")["photon_veto"].any()


def test_convert_observed_enters_the_selection(reco: ak.Array, tmp_path: Path) -> None:
    root = _write_root(tmp_path / "data.root", _basf2_like(reco))
    cmap = _write_map(tmp_path / "map.yaml", {**_JAGGED_MAP, "luminosity_fb": 79.7})
    out = convert_observed(root, cmap, tmp_path / "reco" / "data.parquet", batch_size=700)
    meta = read_metadata(out)
    assert meta["is_data"] is True
    assert meta["sample"] == "data"
    assert meta["n_input_events"] == meta["n_events"] == len(reco)
    assert meta["luminosity_fb"] == 79.7
    assert meta["column_map"]["columns"]["tracks.px"] == "trk_px"
    sim = write_events(tmp_path / "sim" / "data.parquet", reco, {"sample": "sim"})
    _, flow_data = select_file(out, tmp_path / "sel_data", SELECTION)
    _, flow_sim = select_file(sim, tmp_path / "sel_sim", SELECTION)
    assert flow_data.counts == flow_sim.counts
    assert flow_data.yields[-1] == flow_data.counts[-1]  # weight 1 per event
    assert not list((tmp_path / "reco").glob("*.tmp*"))


# --------------------------------------------------------------------------- bad input


@pytest.fixture
def small_root(reco: ak.Array, tmp_path: Path) -> Path:
    return _write_root(tmp_path / "small.root", _basf2_like(reco[:50]))


def _one_line(err: pytest.ExceptionInfo[Exception]) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def _map_with(tmp_path: Path, **changes: Any) -> Path:
    m = yaml.safe_load(yaml.safe_dump(_JAGGED_MAP))
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if value is None and not name:
            m.pop(section)
        elif value is None:
            m[section].pop(name.replace("_DOT_", "."))
        elif name:
            m.setdefault(section, {})[name.replace("_DOT_", ".")] = value
        else:
            m[section] = value
    return _write_map(tmp_path / "bad_map.yaml", m)


def test_bad_files(small_root: Path, tmp_path: Path) -> None:
    cmap = _write_map(tmp_path / "map.yaml", _JAGGED_MAP)
    with pytest.raises(InputError, match=r"nope\.root: file not found") as e:
        read_observed(tmp_path / "nope.root", cmap)
    _one_line(e)
    junk = tmp_path / "junk.root"
    junk.write_bytes(b"not a root file at all" * 10)
    with pytest.raises(InputError, match=r"junk\.root: not a readable ROOT file") as e:
        read_observed(junk, cmap)
    _one_line(e)
    junk_pq = tmp_path / "junk.parquet"
    junk_pq.write_bytes(b"PAR1 nothing")
    with pytest.raises(InputError, match=r"junk\.parquet: not a readable Parquet file"):
        read_observed(junk_pq, cmap)
    csv = tmp_path / "data.csv"
    csv.write_text("a,b\n")
    with pytest.raises(InputError, match=r"unsupported data format '\.csv'"):
        read_observed(csv, cmap)
    with pytest.raises(InputError, match=r"small.root: no tree 'other' \(trees: ntuple\)") as e:
        read_observed(small_root, cmap, tree="other")
    _one_line(e)
    with pytest.raises(ConfigError, match="column map not found"):
        read_observed(small_root, tmp_path / "missing.yaml")


def test_several_trees_need_a_name(reco: ak.Array, tmp_path: Path) -> None:
    path = tmp_path / "two.root"
    branches = _basf2_like(reco[:20])
    with uproot.recreate(path) as f:
        for name in ("a", "b"):
            f.mktree(name, {k: ak.Array(v).type.content for k, v in branches.items()})
            f[name].extend(branches)
    cmap = _map_with(tmp_path, tree=None)
    with pytest.raises(ConfigError, match=r"name the tree .* \(trees: a, b\)"):
        read_observed(path, cmap)
    assert len(read_observed(path, cmap, tree="b")) == 20


def test_missing_branch_names_both(small_root: Path, tmp_path: Path) -> None:
    cmap = _map_with(tmp_path, columns__tracks_DOT_muon_id="trk_muonID")
    with pytest.raises(
        InputError, match=r"small.root:ntuple: branch 'trk_muonID' \(mapped to 'tracks.muon_id'\)"
    ) as e:
        read_observed(small_root, cmap)
    _one_line(e)
    cmap = _map_with(tmp_path, columns__tracks_DOT_z0="trk_dz * scale")
    with pytest.raises(InputError, match=r"branch 'scale' \(mapped to 'tracks.z0'\)"):
        read_observed(small_root, cmap)
    cmap = _map_with(tmp_path, columns__tracks_DOT_z0="__import__('os').getcwd()")
    with pytest.raises(InputError, match="nor an arithmetic expression"):
        read_observed(small_root, cmap)
    cmap = _map_with(tmp_path, columns__tracks_DOT_z0="system(trk_dz)")
    with pytest.raises(ConfigError, match="unknown function"):
        read_observed(small_root, cmap)


def test_bad_values_name_column_and_row(reco: ak.Array, tmp_path: Path) -> None:
    cmap = _write_map(tmp_path / "map.yaml", _JAGGED_MAP)
    branches = _basf2_like(reco[:50])
    counts = ak.to_numpy(ak.num(branches["trk_muid"]))
    row = int(np.flatnonzero(counts > 0)[3])
    muid = ak.to_list(branches["trk_muid"])
    muid[row][0] = float("nan")
    bad = _write_root(tmp_path / "nan.root", {**branches, "trk_muid": ak.Array(muid)})
    with pytest.raises(
        InputError,
        match=rf"column 'tracks.muon_id' <- 'trk_muid' has NaN or infinite values "
        rf"\(first at row {row}\)",
    ) as e:
        read_observed(bad, cmap)
    _one_line(e)
    trg = branches["L1_2trk"].copy()
    trg[7] = 2.0
    bad = _write_root(tmp_path / "trg.root", {**branches, "L1_2trk": trg})
    with pytest.raises(
        InputError,
        match=r"'trg_two_track' <- 'L1_2trk' has values other than "
        r"0 and 1 \(first at row 7\)",
    ):
        read_observed(bad, cmap)
    q = ak.to_list(branches["trk_q"])
    q[row][0] = 0.0
    bad = _write_root(tmp_path / "q.root", {**branches, "trk_q": ak.Array(q)})
    with pytest.raises(InputError, match=rf"charge other than \+1 and -1 \(first at row {row}\)"):
        read_observed(bad, cmap)
    short = ak.to_list(branches["trk_eid"])
    short[row] = short[row][:-1]
    bad = _write_root(tmp_path / "n.root", {**branches, "trk_eid": ak.Array(short)})
    with pytest.raises(InputError, match=rf"different numbers of tracks \(first at row {row}\)"):
        read_observed(bad, cmap)


def test_wrong_types(reco: ak.Array, tmp_path: Path) -> None:
    branches = _basf2_like(reco[:30])
    root = _write_root(tmp_path / "t.root", branches)
    # a per-track branch where one number per event is needed, and the reverse
    cmap = _map_with(tmp_path, columns__trg_two_track="trk_q")
    with pytest.raises(
        InputError,
        match=r"'trg_two_track' <- 'trk_q': wrong type .*expected "
        "one number per event",
    ) as e:
        read_observed(root, cmap)
    _one_line(e)
    cmap = _map_with(tmp_path, columns__tracks_DOT_muon_id="L1_ecl")
    with pytest.raises(InputError, match="expected a list of numbers per event"):
        read_observed(root, cmap)
    # strings in a Parquet file
    table = pa.table(
        {
            "x": pa.array(["a"] * 30),
            **{k: ak.to_arrow(v) if isinstance(v, ak.Array) else v for k, v in branches.items()},
        }
    )
    path = tmp_path / "s.parquet"
    pq.write_table(table, path)
    cmap = _map_with(tmp_path, columns__ecl_energy="x")
    with pytest.raises(InputError, match=r"'ecl_energy' <- 'x': wrong type \??string"):
        read_observed(path, cmap)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"columns__foo": "bar"}, r"unknown column 'foo' \(columns: event, period"),
        ({"columns__weight": "w"}, r"column 'weight' cannot be mapped \(1 for every data"),
        ({"columns__tracks_DOT_muon_id": None}, "required column 'tracks.muon_id' is not mapped"),
        ({"columns__photons_DOT_px": None}, "photon list needs all of .* 'photons.px'"),
        ({"units__tracks_DOT_d0": "MeV"}, "'MeV' is not a unit of length for 'tracks.d0'"),
        ({"units__tracks_DOT_muon_id": "cm"}, "column 'tracks.muon_id' has no unit"),
        (
            {"constants__period": 2020.5, "columns__period": None},
            "constants: 'period' = 2020.5: values that are not",
        ),
        ({"constants__trg_ecl": 1, "columns__trg_ecl": None}, None),
        ({"columns__tracks_DOT_px": ["a", "b"]}, "tracks columns mix per-slot lists"),
        ({"columns__n_tracks": "n"}, "'n_tracks' is only for per-slot tracks"),
        ({"columns__trg_ecl": ["a", "b"]}, "'trg_ecl' takes one branch"),
        ({"colums": {}}, "'colums': unknown field"),
    ],
)
def test_bad_maps(small_root: Path, tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    path = _map_with(tmp_path, **changes)
    if message is None:  # a constant instead of a branch is fine
        assert ak.all(read_observed(small_root, path)["trg_ecl"])
        return
    with pytest.raises(ConfigError, match=message) as e:
        load_column_map(path)
    assert str(e.value).startswith(str(path))
    _one_line(e)


def test_no_photon_information_is_refused(tmp_path: Path) -> None:
    m = yaml.safe_load(yaml.safe_dump(_JAGGED_MAP))
    for f in ("e", "px", "py", "pz"):
        m["columns"].pop(f"photons.{f}")
    with pytest.raises(ConfigError, match="no photon information"):
        load_column_map(_write_map(tmp_path / "m.yaml", m))
    (tmp_path / "y.yaml").write_text("columns: [unclosed\n")
    with pytest.raises(ConfigError, match=r"not valid YAML \(line"):
        load_column_map(tmp_path / "y.yaml")


def test_example_map_is_valid() -> None:
    from importlib import resources

    path = resources.files("zprime") / "data" / "columns_example.yaml"
    cmap = load_column_map(Path(str(path)))
    assert cmap.slots("tracks") == 2
    assert cmap.has_photon_list is False


# --------------------------------------------------------------------------- issue 16
# a two-track ntuple written from scratch (no simulation): per-slot branches, photon-veto variables
_SLOT_MAP = {
    "columns": {
        "trg_two_track": "L1_2trk",
        "tracks.px": ["mu1_px", "mu2_px"],
        "tracks.py": ["mu1_py", "mu2_py"],
        "tracks.pz": ["mu1_pz", "mu2_pz"],
        "tracks.charge": ["mu1_q", "mu2_q"],
        "tracks.muon_id": ["mu1_muid", "mu2_muid"],
        "tracks.d0": ["mu1_dr", "mu2_dr"],
        "tracks.z0": ["mu1_dz", "mu2_dz"],
        "e_photons": "E_gam",
        "min_angle_photon_recoil": "ang_gam",
    }
}


def _slot_ntuple(path: Path, n: int = 20, **replace: Any) -> Path:
    """``n`` two-muon events (momenta 1-5 GeV) as a Parquet file; ``replace``: branch -> values."""
    rng = np.random.default_rng(7)
    cols: dict[str, Any] = {"L1_2trk": np.ones(n), "E_gam": np.zeros(n), "ang_gam": np.full(n, 3.0)}
    for i, q in ((1, 1.0), (2, -1.0)):
        for c in ("px", "py", "pz"):
            cols[f"mu{i}_{c}"] = rng.uniform(-3.0, 3.0, n)
        cols[f"mu{i}_q"] = np.full(n, q)
        cols[f"mu{i}_muid"] = np.full(n, 0.9)
        cols[f"mu{i}_dr"] = np.zeros(n)
        cols[f"mu{i}_dz"] = np.zeros(n)
    for name, values in replace.items():
        cols[name] = np.asarray(values, dtype=np.float64)
    pq.write_table(pa.table(cols), path)
    return path


def test_slot_ntuple_reads(tmp_path: Path) -> None:
    cmap = _write_map(tmp_path / "m.yaml", _SLOT_MAP)
    events = read_observed(_slot_ntuple(tmp_path / "d.parquet"), cmap)
    assert len(events) == 20
    assert ak.all(ak.num(events["tracks"]) == 2)


def test_momentum_above_the_collision_energy_is_refused(tmp_path: Path) -> None:
    """A corrupt 1e308 (or a momentum in the wrong unit) names file, column, branch and row."""
    cmap = _write_map(tmp_path / "m.yaml", _SLOT_MAP)
    px = np.ones(20)
    px[3] = 1e308
    bad = _slot_ntuple(tmp_path / "bad.parquet", mu2_px=px)
    with pytest.raises(InputError) as e:
        read_observed(bad, cmap)
    msg = _one_line(e)
    assert msg.startswith(f"{bad}: column 'tracks.px' <- 'mu2_px' = 1e+308 GeV")
    assert "more momentum than the 11 GeV of both beams together (first at row 3;" in msg
    # a magnitude above the limit with each component below it
    big = np.full(20, 1.0)
    big[5] = 8.0
    bad = _slot_ntuple(tmp_path / "mag.parquet", mu1_px=big, mu1_py=big, mu1_pz=big)
    with pytest.raises(
        InputError,
        match=r"'mu1_p[xyz]' = 8 GeV: a track with more momentum "
        r"\(\|p\| = 13.86 GeV\) .* \(first at row 5;",
    ):
        read_observed(bad, cmap)
    # a file in MeV read as GeV
    mev = _slot_ntuple(tmp_path / "mev.parquet", mu1_pz=np.full(20, 4000.0))
    with pytest.raises(
        InputError,
        match=r"'mu1_pz' = 4000 GeV: a track with more momentum than .*\(first at row 0; a wrong",
    ):
        read_observed(mev, cmap)
    m = yaml.safe_load(yaml.safe_dump(_SLOT_MAP))
    m["units"] = {f"tracks.{c}": "MeV" for c in ("px", "py", "pz")}
    in_mev = _write_map(tmp_path / "mev.yaml", m)
    px_mev = np.full(20, 7200.0)  # 7.2 GeV: above the electron beam, within the resolution
    ok = _slot_ntuple(
        tmp_path / "ok.parquet",
        mu1_px=px_mev,
        mu1_py=np.zeros(20),
        mu1_pz=np.zeros(20),
        mu2_px=np.full(20, 100.0),
        mu2_py=np.zeros(20),
        mu2_pz=np.zeros(20),
    )
    assert float(ak.max(read_observed(ok, in_mev)["tracks"].px)) == pytest.approx(7.2)


def test_check_observed_is_cheap_and_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """check_observed opens the file, resolves the branches and converts the first rows only."""
    cmap = _write_map(tmp_path / "m.yaml", _SLOT_MAP)
    data = _slot_ntuple(tmp_path / "d.parquet", n=5000)
    assert check_observed(data, cmap).slots("tracks") == 2
    seen: list[int] = []
    real = realdata._convert_batch

    def spy(data_: Any, n: int, *args: Any) -> ak.Array:
        seen.append(n)
        return real(data_, n, *args)

    monkeypatch.setattr(realdata, "_convert_batch", spy)
    check_observed(data, cmap, rows=100)
    assert seen == [100]
    m = yaml.safe_load(yaml.safe_dump(_SLOT_MAP))
    m["columns"]["tracks.d0"] = ["mu1_dr", "mu2_d0"]
    with pytest.raises(InputError, match=r"branch 'mu2_d0' \(mapped to 'tracks.d0'\) not found"):
        check_observed(data, _write_map(tmp_path / "b.yaml", m))
    with pytest.raises(InputError, match="file not found"):
        check_observed(tmp_path / "none.parquet", cmap)
    (tmp_path / "x.parquet").write_text("not parquet")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        check_observed(tmp_path / "x.parquet", cmap)
    px = np.ones(5000)
    px[10] = 1e308
    with pytest.raises(InputError, match=r"'mu1_px' = 1e\+308 GeV.*first at row 10;"):
        check_observed(_slot_ntuple(tmp_path / "bad.parquet", n=5000, mu1_px=px), cmap)
