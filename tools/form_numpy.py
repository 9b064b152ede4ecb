"""Shared helpers of the scripts that turn FORM traces into numpy code.

``tools/generate_signal_me.py`` (e+e- -> mu mu Z') and ``tools/generate_mumugamma_me.py``
(e+e- -> mu mu gamma) run FORM on their ``.frm`` script and translate its optimised C output
(``Format O3``, temporaries ``Zn_``) into numpy expressions; the FORM call and the translation
of one expression live here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path


def form_version() -> str:
    """The first line of ``form -v`` (e.g. ``FORM 4.3 (Jan  4 2023) 64-bits``)."""
    res = subprocess.run(["form", "-v"], capture_output=True, text=True, check=False)
    return (res.stdout or res.stderr).splitlines()[0].strip()


def run_form(frm: Path, out_name: str) -> str:
    """Run FORM on ``frm`` (its ``OUTFILE`` set to ``out_name`` in a temporary directory) and
    return what it wrote there."""
    if shutil.which("form") is None:
        raise SystemExit("FORM not found (Debian/Ubuntu: apt-get install form)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / out_name
        subprocess.run(
            ["form", "-q", "-D", f"OUTFILE={out}", str(frm)],
            cwd=tmp,
            check=True,
            capture_output=True,
            text=True,
        )
        return out.read_text()


def translate_expression(expr: str, rename: Mapping[str, str], args: Iterable[str]) -> str:
    """One FORM C expression as numpy: ``pow`` to ``**``, ``Zn_`` to ``zn``, FORM symbols to
    argument names; anything else (an unknown symbol or character) is an error."""
    allowed = set(args)
    expr = " ".join(expr.split())

    def power(m: re.Match[str]) -> str:
        base, exp = m.group(1), int(m.group(2))
        if exp == -1:
            return f"(1.0 / {base})"
        if exp < 0:
            return f"(1.0 / {base} ** {-exp})"
        return f"{base} ** {exp}"

    expr = re.sub(r"pow\((\w+),(-?\d+)\)", power, expr)
    if "pow(" in expr:
        raise ValueError(f"untranslated power in {expr!r}")
    expr = re.sub(r"\bZ(\d+)_", r"z\1", expr)
    expr = re.sub(r"\b([A-Za-z]\w*)\b", lambda m: rename.get(m.group(1), m.group(1)), expr)
    if not re.fullmatch(r"[\w\s+\-*/().]+", expr):
        raise ValueError(f"unexpected characters in {expr!r}")
    for name in re.findall(r"\b[A-Za-z_]\w*\b", expr):
        if name not in allowed and not re.fullmatch(r"z\d+", name):
            raise ValueError(f"unknown symbol {name!r} in FORM output")
    return expr


def write_module(code: str, out: Path) -> Path:
    """Write the generated module ``out`` (through a temporary file), formatted with ruff when
    ruff is available, so that a regenerated module is identical to the shipped one."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.py")
    tmp.write_text(code)
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if Path(ruff).exists():
        subprocess.run([ruff, "format", "--quiet", "--line-length", "100", str(tmp)], check=False)
    tmp.replace(out)
    return out
