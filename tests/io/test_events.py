from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from zprime.errors import InputError
from zprime.io.events import (
    EventWriter,
    iter_events,
    make_particles,
    read_events,
    read_metadata,
    validate_generator_events,
    write_events,
)


def _chunk(rng: np.random.Generator, n: int, start: int = 0) -> ak.Array:
    counts = rng.integers(2, 5, size=n)
    total = int(counts.sum())
    p4 = rng.normal(size=(total, 4))
    p4[:, 0] = np.abs(p4[:, 0]) + 5.0
    pdg = rng.choice([13, -13, 22], size=total)
    return ak.zip(
        {
            "event": np.arange(start, start + n, dtype=np.int64),
            "weight": np.full(n, 0.5),
            "particles": make_particles(pdg, p4, counts),
        },
        depth_limit=1,
    )


def test_round_trip_in_chunks(tmp_path: Path, rng: np.random.Generator) -> None:
    chunks = [_chunk(rng, 100, 0), _chunk(rng, 50, 100)]
    path = tmp_path / "s.parquet"
    write_events(path, chunks, {"sample": "test", "cross_section_fb": 75.0})
    back = read_events(path)
    assert len(back) == 150
    assert ak.all(back["event"] == np.arange(150))
    assert ak.to_list(back["particles"][120]) == ak.to_list(chunks[1]["particles"][20])
    meta = read_metadata(path)
    assert meta == {"sample": "test", "cross_section_fb": 75.0, "schema_version": 1}
    validate_generator_events(back, str(path))
    batches = list(iter_events(path, batch_size=40))
    assert sum(len(b) for b in batches) == 150
    assert max(len(b) for b in batches) <= 40


def test_fixed_shape_particles() -> None:
    pdg = np.array([[13, -13], [13, -13]])
    p4 = np.arange(16, dtype=float).reshape(2, 2, 4)
    parts = make_particles(pdg, p4)
    assert ak.to_list(ak.num(parts)) == [2, 2]
    assert parts[1, 1].pz == 15.0


def test_metadata_set_at_the_end(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "m.parquet"
    with EventWriter(path, {"sample": "x"}) as w:
        w.write(_chunk(rng, 10))
        w.update_metadata(sigma_fb=12.5)
    assert read_metadata(path)["sigma_fb"] == 12.5


def test_failed_write_leaves_nothing(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "half.parquet"
    chunk = _chunk(rng, 10)

    def crash() -> None:
        with EventWriter(path) as w:
            w.write(chunk)
            raise RuntimeError("generator crashed")

    with pytest.raises(RuntimeError):
        crash()
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_empty_writer_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no events"), EventWriter(tmp_path / "e.parquet"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_bad_files_are_named(tmp_path: Path, rng: np.random.Generator) -> None:
    missing = tmp_path / "missing.parquet"
    with pytest.raises(InputError, match=r"missing\.parquet: file not found"):
        read_events(missing)
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(InputError, match=r"corrupt\.parquet: not a readable Parquet"):
        read_events(corrupt)
    good = write_events(tmp_path / "g.parquet", _chunk(rng, 5))
    with pytest.raises(InputError, match="missing column 'mass'"):
        read_events(good, columns=["mass"])


def test_validation_names_columns(rng: np.random.Generator) -> None:
    ev = _chunk(rng, 5)
    with pytest.raises(InputError, match="missing column 'weight'"):
        validate_generator_events(ev[["event", "particles"]], "x")
    bad = ak.with_field(ev, np.array([0.1, np.nan, 0.1, 0.1, 0.1]), "weight")
    with pytest.raises(InputError, match="'weight' has NaN"):
        validate_generator_events(bad, "x")
    px = ak.to_numpy(ak.flatten(ev["particles"]["px"])).copy()
    px[3] = np.nan
    parts = ak.with_field(ev["particles"], ak.unflatten(px, ak.num(ev["particles"])), "px")
    with pytest.raises(InputError, match=r"'particles.px' has NaN"):
        validate_generator_events(ak.with_field(ev, parts, "particles"), "x")
