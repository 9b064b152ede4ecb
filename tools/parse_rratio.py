"""Parse the PDG R-ratio compilation into zprime's package table ``rratio_pdg.csv``.

    python tools/parse_rratio.py RAW.dat [--out src/zprime/data/rratio_pdg.csv]
                                 [--min 1.0] [--max 11.5] [--source TEXT]

RAW.dat is the PDG file of R = sigma(e+e- -> hadrons) / sigma(e+e- -> mu+ mu-), 2012 edition
(J. Beringer et al. (Particle Data Group), Phys. Rev. D 86, 010001 (2012)), the copy
``input/rpp2012-hadronicrpp_page1001.dat`` of github.com/ShipSoft/FairShip. Its format is the
one of the Fortran reader printed at the end of that file:

    format(f10.5,2x,f10.5,1x,f10.5,2x, f10.5,2x,sp,f10.5,1x,f10.5,ss,2x, f10.5,2x,
           '''',a15,'''',1x,'''',a15,'''',2x, sp,f6.2,1x,f6.2,1x, '''',a132,'''')

i.e. E_cm, E_min, E_max (GeV), R, +stat, -stat, normalisation uncertainty (%), short code,
reference, one point-to-point systematic (+, - in %) and its comment. A point may carry further
point-to-point systematics on the following lines, whose E_cm field is blank; lines beginning
with ``*`` are comments. The script reads the fields by column (as the Fortran reader does),
keeps the points with ``--min <= E_cm <= --max`` and writes, atomically (a temporary file in
the same folder, then a rename), a CSV with a ``#`` header citing the source and the columns

    sqrt_s_gev, sqrt_s_min_gev, sqrt_s_max_gev, r, stat_up, stat_down,
    norm_frac, ptp_frac, syst_frac, code, reference

where stat_up, stat_down are the absolute statistical errors (both >= 0), norm_frac the
normalisation uncertainty and ptp_frac the point-to-point systematics added in quadrature (each
line's larger of + and -) as fractions of R, and syst_frac = norm_frac (+) ptp_frac.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from zprime._util import atomic_path

__all__ = ["RPoint", "main", "parse_rratio_text", "write_rratio_csv"]

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "zprime" / "data" / "rratio_pdg.csv"
DEFAULT_SOURCE = (
    "github.com/ShipSoft/FairShip, input/rpp2012-hadronicrpp_page1001.dat "
    "(commit 11201c515cb2555c4b07b015f57316246d814fc6)"
)
CSV_COLUMNS = (
    "sqrt_s_gev",
    "sqrt_s_min_gev",
    "sqrt_s_max_gev",
    "r",
    "stat_up",
    "stat_down",
    "norm_frac",
    "ptp_frac",
    "syst_frac",
    "code",
    "reference",
)

# Column slices of the Fortran format above (0-based, end exclusive); the quotes of the three
# character fields sit at 82/98, 100/116 and 133/266.
_F_ECM = slice(0, 10)
_F_EMIN = slice(12, 22)
_F_EMAX = slice(23, 33)
_F_R = slice(35, 45)
_F_STAT_UP = slice(47, 57)
_F_STAT_DOWN = slice(58, 68)
_F_NORM = slice(70, 80)
_F_CODE = slice(83, 98)
_F_REF = slice(101, 116)
_F_SYS_UP = slice(119, 125)
_F_SYS_DOWN = slice(126, 132)
_QUOTES = (82, 98, 100, 116, 133)


@dataclass
class RPoint:
    """One point of the compilation (energies in GeV, errors absolute, systematics in %)."""

    sqrt_s: float
    sqrt_s_min: float
    sqrt_s_max: float
    r: float
    stat_up: float
    stat_down: float
    norm_percent: float
    code: str
    reference: str
    ptp_percent: list[float] = field(default_factory=list)

    @property
    def ptp_frac(self) -> float:
        """Point-to-point systematics added in quadrature, as a fraction of R."""
        return math.sqrt(sum(p * p for p in self.ptp_percent)) / 100.0

    @property
    def norm_frac(self) -> float:
        """Normalisation uncertainty as a fraction of R."""
        return abs(self.norm_percent) / 100.0

    @property
    def syst_frac(self) -> float:
        """Total systematic uncertainty (normalisation (+) point-to-point) as a fraction of R."""
        return math.hypot(self.norm_frac, self.ptp_frac)


def _number(line: str, cols: slice, what: str, lineno: int, source: str) -> float:
    text = line[cols].strip()
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{source}: line {lineno}: {what} {text!r} is not a number") from None


def _systematic(line: str, lineno: int, source: str) -> float:
    up = _number(line, _F_SYS_UP, "sys(ptp,%)+", lineno, source)
    down = _number(line, _F_SYS_DOWN, "sys(ptp,%)-", lineno, source)
    return max(abs(up), abs(down))


def parse_rratio_text(text: str, source: str = "<text>") -> list[RPoint]:
    """All points of a PDG R file's text, in file order.

    Raises
    ------
    ValueError
        A line that is neither a comment, a data line nor a continuation line of the format,
        or a continuation line before the first point.
    """
    points: list[RPoint] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r\n")
        if not line.strip() or line.startswith("*"):
            continue
        # pad lines whose trailing blanks were stripped, so that every field exists
        line = line.ljust(267)
        if not line[_F_ECM].strip():
            if line[_QUOTES[-1]] != "'":
                raise ValueError(f"{source}: line {lineno} does not have the PDG R-file format")
            if not points:
                raise ValueError(f"{source}: line {lineno}: systematics line before any point")
            points[-1].ptp_percent.append(_systematic(line, lineno, source))
            continue
        if any(line[q] != "'" for q in _QUOTES):
            raise ValueError(f"{source}: line {lineno} does not have the PDG R-file format")
        points.append(
            RPoint(
                sqrt_s=_number(line, _F_ECM, "E_cm", lineno, source),
                sqrt_s_min=_number(line, _F_EMIN, "E_min", lineno, source),
                sqrt_s_max=_number(line, _F_EMAX, "E_max", lineno, source),
                r=_number(line, _F_R, "R", lineno, source),
                stat_up=abs(_number(line, _F_STAT_UP, "+stat", lineno, source)),
                stat_down=abs(_number(line, _F_STAT_DOWN, "-stat", lineno, source)),
                norm_percent=_number(line, _F_NORM, "norm(%)", lineno, source),
                code=line[_F_CODE].strip(),
                reference=line[_F_REF].strip(),
                ptp_percent=[_systematic(line, lineno, source)],
            )
        )
    return points


def rratio_csv_text(points: list[RPoint], *, lo: float, hi: float, source: str) -> str:
    """The CSV text (``#`` header, column line, rows) of the points with lo <= E_cm <= hi."""
    kept = sorted((p for p in points if lo <= p.sqrt_s <= hi), key=lambda p: p.sqrt_s)
    buf = io.StringIO()
    header = [
        "zprime R-ratio table: R = sigma(e+e- -> hadrons) / sigma(e+e- -> mu+ mu-)",
        "data: the Particle Data Group compilation of R, 2012 edition: J. Beringer et al.",
        "  (Particle Data Group), Phys. Rev. D 86, 010001 (2012), section 'Plots of cross",
        "  sections and related quantities', file rpp2012-hadronicrpp_page1001.dat",
        "  (header '1152 points', dated 31.08.2007); cite the PDG and the original",
        "  experiments (columns code, reference) when using these numbers",
        f"copy read: {source}",
        f"kept: {len(kept)} points with {lo:g} <= sqrt_s <= {hi:g} GeV, in energy order",
        "written by tools/parse_rratio.py (zprime); errors: stat_up, stat_down absolute;",
        "  norm_frac = normalisation uncertainty, ptp_frac = point-to-point systematics in",
        "  quadrature, syst_frac = norm_frac (+) ptp_frac, all as fractions of r",
    ]
    for h in header:
        buf.write(f"# {h}\n")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for p in kept:
        writer.writerow(
            [
                f"{p.sqrt_s:.5f}",
                f"{p.sqrt_s_min:.5f}",
                f"{p.sqrt_s_max:.5f}",
                f"{p.r:.5f}",
                f"{p.stat_up:.5f}",
                f"{p.stat_down:.5f}",
                f"{p.norm_frac:.7f}",
                f"{p.ptp_frac:.7f}",
                f"{p.syst_frac:.7f}",
                p.code,
                p.reference,
            ]
        )
    return buf.getvalue()


def write_rratio_csv(
    raw: str | Path,
    out: str | Path = DEFAULT_OUT,
    *,
    lo: float = 1.0,
    hi: float = 11.5,
    source: str = DEFAULT_SOURCE,
) -> int:
    """Parse ``raw`` and write the CSV to ``out`` atomically; returns the number of rows."""
    raw_path = Path(raw)
    points = parse_rratio_text(raw_path.read_text(encoding="latin-1"), str(raw_path))
    text = rratio_csv_text(points, lo=lo, hi=hi, source=source)
    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return sum(1 for p in points if lo <= p.sqrt_s <= hi)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("raw", type=Path, help="the PDG file rpp2012-hadronicrpp_page1001.dat")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--min", dest="lo", type=float, default=1.0, help="lowest sqrt(s), GeV")
    ap.add_argument("--max", dest="hi", type=float, default=11.5, help="highest sqrt(s), GeV")
    ap.add_argument("--source", default=DEFAULT_SOURCE, help="where the raw copy came from")
    args = ap.parse_args(argv)
    try:
        n = write_rratio_csv(args.raw, args.out, lo=args.lo, hi=args.hi, source=args.source)
    except (OSError, ValueError) as err:
        print(f"parse_rratio: {err}", file=sys.stderr)
        return 2
    print(f"wrote {n} points to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
