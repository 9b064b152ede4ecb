"""Issue 16's probe, rerun as a user would: each case of the issue through the real ``zprime``
command, with its exit status, the last line it printed on stderr and what it left behind.

Usage::

    python validation/robustness_probe.py QUICK_RUN_DIR [--out TABLE.md]

``QUICK_RUN_DIR`` is a finished ``zprime run --quick --out QUICK_RUN_DIR``; the cases that alter
a run directory work on copies of it (in a temporary folder), never on it. Prints a Markdown
table (case, exit status, message, leftovers) and writes it to ``--out`` if given.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from zprime.stats.workspace import build_workspace, write_workspace

ZPRIME = [sys.executable, "-m", "zprime.cli"]
ROWS: list[tuple[str, str, str, str]] = []


def _as_at_a_terminal() -> None:
    """Child set-up: Ctrl-C with its default meaning. A shell that starts a job in the
    background (``cmd &`` in a script, as CI harnesses do) ignores SIGINT in it, and Python then
    never turns SIGINT into KeyboardInterrupt; a user at a terminal always has the default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def zprime(*args: str, timeout: float = 1800.0, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ZPRIME, *args], capture_output=True, text=True, timeout=timeout, **kw)  # type: ignore[call-overload]


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
    return lines[-1] if lines else "(nothing)"


def stage_lines(text: str) -> str:
    """What a rerun did: its lines other than "up to date" (files remade, stages run), and how
    many stages and files were up to date."""
    lines = [ln.strip() for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
    fresh = sum("up to date" in ln for ln in lines)
    keep = [
        ln
        for ln in lines
        if "up to date" not in ln and any(k in ln for k in ("again", "removed", "done in"))
    ]
    shown = "; ".join(keep[:6]) + (f"; ... ({len(keep) - 6} more)" if len(keep) > 6 else "")
    return f"{shown or 'nothing re-ran'} [{fresh} up to date]"


def leftovers(root: Path, before: set[Path] | None = None) -> str:
    if not root.exists():
        return "none (no directory)"
    new = {p for p in root.rglob("*") if p.is_file()} - (before or set())
    part = [p for p in new if p.name.endswith(".part")]
    if part:
        return f"{len(part)} .part file(s)"
    if before is None:
        return f"{len(new)} file(s)" if new else "none"
    return f"{len(new)} new file(s)" if new else "none"


def record(case: str, status: int | str, message: str, left: str) -> None:
    ROWS.append((case, str(status), message.replace("|", "\\|"), left))
    print(f"[{case}] {status}: {message} ({left})", flush=True)


def interrupt(args: list[str], wait_for: str, err_path: Path, delay: float = 1.0) -> int:
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) once stderr shows
    ``wait_for``, then wait for the exit status."""
    with err_path.open("w") as err:
        proc = subprocess.Popen(
            [*ZPRIME, *args],
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
            preexec_fn=_as_at_a_terminal,
        )
        deadline = time.monotonic() + 600
        while wait_for not in err_path.read_text() and proc.poll() is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGINT)
        t0 = time.monotonic()
        status = proc.wait(timeout=300)
        print(f"  exited {time.monotonic() - t0:.1f} s after Ctrl-C", flush=True)
        return status


def ntuple(path: Path, **bad: tuple[int, float]) -> Path:
    rng = np.random.default_rng(3)
    n = 20
    values = {
        "trk_px": rng.uniform(-2, 2, (n, 2)),
        "trk_py": rng.uniform(-2, 2, (n, 2)),
        "trk_pz": rng.uniform(-2, 2, (n, 2)),
        "trk_charge": np.tile([1.0, -1.0], (n, 1)),
        "trk_muon_id": np.full((n, 2), 0.9),
        "trk_d0": np.zeros((n, 2)),
        "trk_z0": np.zeros((n, 2)),
        "gam_e": np.full((n, 1), 0.5),
        "gam_px": np.full((n, 1), 0.3),
        "gam_py": np.zeros((n, 1)),
        "gam_pz": np.full((n, 1), 0.4),
    }
    for name, (row, value) in bad.items():
        values[name][row, 0] = value
    cols = {"trg": np.ones(n)}
    cols.update({k: pa.array(v.tolist(), type=pa.list_(pa.float64())) for k, v in values.items()})
    pq.write_table(pa.table(cols), path)
    return path


def column_map(path: Path, **replace: str) -> Path:
    columns = {
        "tracks.px": "trk_px",
        "tracks.py": "trk_py",
        "tracks.pz": "trk_pz",
        "tracks.charge": "trk_charge",
        "tracks.muon_id": "trk_muon_id",
        "tracks.d0": "trk_d0",
        "tracks.z0": "trk_z0",
        "trg_two_track": "trg",
        **{f"photons.{c}": f"gam_{c}" for c in ("e", "px", "py", "pz")},
        **replace,
    }
    path.write_text(yaml.safe_dump({"columns": columns}))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("quick_run", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--sections", default="1234567", help="which of the cases 1-7 to run (default: all)"
    )
    args = parser.parse_args()
    quick: Path = args.quick_run.resolve()
    if not (quick / "provenance.json").is_file():
        sys.exit(f"{quick}: not a finished run directory (no provenance.json)")
    tmp = Path(tempfile.mkdtemp(prefix="zprime_probe_"))
    try:
        probe(quick, tmp, set(args.sections))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    table = [
        "| case | exit status | message (last line on stderr) | leftovers |",
        "|---|---|---|---|",
    ]
    table += [f"| {c} | {s} | {m} | {lft} |" for c, s, m, lft in ROWS]
    text = "\n".join(table) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


def copy_run(quick: Path, tmp: Path, name: str) -> Path:
    target = tmp / name
    shutil.copytree(quick, target, symlinks=True)
    return target


def probe(quick: Path, tmp: Path, sections: set[str]) -> None:
    if "1" in sections:  # 1. interrupts
        out = tmp / "interrupted"
        status = interrupt(["run", "--quick", "--out", str(out)], "stage generate", tmp / "e1.txt")
        record(
            "1. Ctrl-C in `zprime run --quick` (generate stage)",
            status,
            last_line((tmp / "e1.txt").read_text()),
            leftovers(out),
        )
        out = tmp / "signal"
        status = interrupt(
            ["generate", "signal", "--mass", "2", "-n", "20000000", "--out", str(out)],
            "",  # a progress bar into a file prints only when it ends
            tmp / "e1b.txt",
            delay=8.0,
        )
        record(
            "1. Ctrl-C in `zprime generate signal`",
            status,
            last_line((tmp / "e1b.txt").read_text()),
            leftovers(out),
        )

    if "2" in sections:  # 2. two runs into one directory
        two = copy_run(quick, tmp, "two")
        first = subprocess.Popen(
            [*ZPRIME, "run", "--quick", "--out", str(two), "--force", "report"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(8.0)
        second = zprime("run", "--quick", "--out", str(two), timeout=120)
        first.communicate()
        record(
            "2. a second run on a directory in use",
            second.returncode,
            last_line(second.stderr).replace(str(tmp), "TMP"),
            f"first run exit {first.returncode}",
        )

    if "3" in sections:  # 3. the cache
        checks: dict[str, Callable[[Path], str]] = {}

        def cache_case(case: str, damage: Callable[[Path], str], *extra: str) -> None:
            run_dir = copy_run(quick, tmp, "cache")
            what = damage(run_dir)
            proc = zprime("run", "--quick", "--out", str(run_dir), *extra)
            after = checks.get(what, lambda d: "")(run_dir)
            record(f"3. {case} ({what})", proc.returncode, stage_lines(proc.stderr), after)
            shutil.rmtree(run_dir)

        def truncate_parquet(run_dir: Path) -> str:
            f = sorted((run_dir / "events").glob("*.parquet"))[0]
            with f.open("r+b") as fh:
                fh.truncate(f.stat().st_size // 2)
            return f"truncated {f.relative_to(run_dir)}"

        def alter_reco(run_dir: Path) -> str:
            f = sorted((run_dir / "reco").rglob("mumu*.parquet"))[0]
            table = pq.read_table(f)
            pq.write_table(table.slice(0, table.num_rows // 2), f)
            return f"half of {f.relative_to(run_dir)} removed"

        def truncate_resolution(run_dir: Path) -> str:
            f = run_dir / "resolution.json"
            f.write_text(f.read_text()[:20])
            return "resolution.json truncated"

        def delete_limits(run_dir: Path) -> str:
            (run_dir / "limits.csv").unlink()
            return "limits.csv deleted"

        def part_files(run_dir: Path) -> str:
            (run_dir / "events" / ".mumu.parquet.x1y2.part").write_bytes(b"half")
            (run_dir / ".limits.csv.abcd.part").write_text("half")
            return "two .part files of a killed run"

        cases = [
            ("truncated cached Parquet", truncate_parquet, ()),
            ("`--force simulate`", lambda d: "nothing damaged", ("--force", "simulate")),
            ("altered reco file", alter_reco, ()),
            ("truncated resolution.json", truncate_resolution, ()),
            ("deleted limits.csv", delete_limits, ()),
            ("SIGKILL leftovers", part_files, ()),
        ]
        checks["limits.csv deleted"] = lambda d: (
            "limits.csv restored" if (d / "limits.csv").is_file() else "limits.csv MISSING"
        )
        checks["two .part files of a killed run"] = lambda d: (
            f"{len(list(d.rglob('*.part')))} .part files"
        )
        for case, damage, extra in cases:
            cache_case(case, damage, *extra)

    if "4" in sections:  # 4. moved and copied run directories
        moved = copy_run(quick, tmp, "orig")
        target = tmp / "moved"
        moved.rename(target)
        proc = zprime("run", "--quick", "--out", str(target))
        record(
            "4. a moved run directory, run again",
            proc.returncode,
            stage_lines(proc.stderr),
            "all stages up to date" if proc.stderr.count("up to date") >= 9 else "stages re-ran",
        )
        manifests = " ".join(p.read_text() for p in (target / "stages").rglob("*") if p.is_file())
        record(
            "4. stage records of a copied directory",
            0,
            "absolute paths: " + ("yes" if str(quick) in manifests else "none"),
            "",
        )
        shutil.rmtree(target)

    if "5" in sections:  # 5. one line for usage errors, a full disk, markup
        for case, argv in [
            ("`zprime xsec --mass abc`", ["xsec", "--mass", "abc"]),
            ("unknown option", ["xsec", "--bogus"]),
            ("unknown command", ["bogus"]),
            ("missing --out", ["generate", "signal", "--mass", "1"]),
        ]:
            proc = zprime(*argv, timeout=120)
            record(
                f"5. {case}",
                proc.returncode,
                last_line(proc.stderr),
                f"{len(proc.stderr.strip().splitlines())} line(s)",
            )
        with open("/dev/full", "w") as full:
            proc = subprocess.run(
                [*ZPRIME, "config", "show"],
                stdout=full,
                stderr=subprocess.PIPE,
                text=True,
                timeout=120,
            )
        record(
            "5. full disk (`config show > /dev/full`)",
            proc.returncode,
            last_line(proc.stderr),
            f"{len(proc.stderr.strip().splitlines())} line(s)",
        )
        weird = tmp / "a[bold]b" / "c[/].yaml"
        proc = zprime("run", "--config", str(weird), "--out", str(tmp / "m"), timeout=120)
        record(
            "5. rich markup in a path",
            proc.returncode,
            last_line(proc.stderr).replace(str(tmp), "TMP"),
            leftovers(tmp / "m"),
        )

    if "6" in sections:  # 6. early checks
        data = ntuple(tmp / "data.parquet")
        cases6 = [
            (
                "`--data` missing",
                [
                    "--data",
                    str(tmp / "none.parquet"),
                    "--columns",
                    str(column_map(tmp / "map.yaml")),
                ],
            ),
            (
                "`--columns` names a missing branch",
                [
                    "--data",
                    str(data),
                    "--columns",
                    str(column_map(tmp / "m2.yaml", **{"tracks.d0": "trk_dd"})),
                ],
            ),
            ("`--lumi -5`", ["--lumi", "-5"]),
            ("`--workers 0`", ["--workers", "0"]),
            (
                "momenta of 1e308 in the data file",
                [
                    "--data",
                    str(ntuple(tmp / "big.parquet", trk_px=(7, 1e308))),
                    "--columns",
                    str(column_map(tmp / "map.yaml")),
                ],
            ),
        ]
        for case, extra in cases6:
            out = tmp / "early"
            t0 = time.monotonic()
            proc = zprime("run", "--out", str(out), *extra, timeout=300)
            record(
                f"6. {case}",
                proc.returncode,
                last_line(proc.stderr).replace(str(tmp), "TMP")
                + f" ({time.monotonic() - t0:.1f} s)",
                leftovers(out),
            )
        # pyhf (numerical gradients) takes 25 s per hypothesis test on a quick run's 60-bin window
        # with ~110 modifiers and 46 s with all-zero data, and its root finding needs 60-90 of them:
        # the probe uses the window's spectra merged four bins into one (20 bins)
        ws = sorted((quick / "workspaces_narrow").glob("M*[0-9].json"))
        spec = json.loads(ws[len(ws) // 2].read_text())
        samples = {s["name"]: np.asarray(s["data"]) for s in spec["channels"][0]["samples"]}
        n_bins = len(samples["signal"]) // 4 * 4

        def merged(a: np.ndarray) -> np.ndarray:
            return a[:n_bins].reshape(-1, 4).sum(axis=1)

        zero_spec = build_workspace(
            merged(samples["signal"]),
            {"background": merged(samples["background"])},
            np.zeros(n_bins // 4),
            background_shape_unc=0.1,
            signal_efficiency_unc=0.05,
            lumi_unc=0.01,
            name="zero_data",
        )
        zero = tmp / "zero.json"
        write_workspace(zero, zero_spec)
        for engine in ("fast", "pyhf"):
            t0 = time.monotonic()
            proc = zprime("limit", str(zero), "--engine", engine, timeout=3600)
            record(
                f"6. `zprime limit --engine {engine}` on all-zero data ({n_bins // 4} bins)",
                proc.returncode,
                last_line(proc.stdout or proc.stderr)[:170] + f" ({time.monotonic() - t0:.0f} s)",
                "",
            )

    if "7" in sections:  # 7. the quick run's summary
        summary = (quick / "summary.md").read_text()
        lines = [ln for ln in summary.splitlines() if "sigma" in ln.lower() or "GoF" in ln]
        record("7. `zprime run --quick` summary", 0, " / ".join(lines[:3])[:300], "")


if __name__ == "__main__":
    main()
