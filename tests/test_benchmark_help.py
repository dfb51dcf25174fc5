"""Every benchmark script answers --help with its usage and runs nothing: the scripts are run by
people choosing their sizes, so a script that crashes on --help, or takes its sizes from a bare
argv, is a defect. One child process runs them all in turn (as ``__main__``), so the peers they
import (pandas, pyarrow, cryptofeed, ...) are imported once."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
# the peers of the `bench` extra (pyproject.toml), by import name: CI installs only `test`, and
# a script whose peer is not installed cannot run at all, --help included
BENCH_PEERS = ("binance", "order_book", "cryptofeed", "py_lets_be_rational")

DRIVER = r"""
import contextlib, io, json, runpy, sys
results = {}
sys.path.insert(0, sys.argv[1])
for script in sys.argv[2:]:
    out, err = io.StringIO(), io.StringIO()
    sys.argv = [script, "--help"]
    code = None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        code = exc.code
    except BaseException as exc:
        code = f"{type(exc).__name__}: {exc}"
    results[script] = [code, out.getvalue(), err.getvalue()[-400:]]
print(json.dumps(results))
"""


def test_every_benchmark_script_prints_its_usage_on_help_and_exits() -> None:
    scripts = sorted(str(p) for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_"))
    assert len(scripts) >= 20
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(BENCHMARKS), *scripts],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=BENCHMARKS,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout.splitlines()[-1])
    assert sorted(results) == scripts
    missing = {m for m in BENCH_PEERS if importlib.util.find_spec(m) is None}
    answered = 0
    for script, (code, out, err) in results.items():
        name = Path(script).name
        if isinstance(code, str) and any(f"No module named '{m}" in code for m in missing):
            continue  # its peer is not installed here
        answered += 1
        assert code == 0, f"{name}: exit {code!r}; {err}"  # None: it ran instead of exiting
        assert out.startswith("usage: ") and "-h, --help" in out, name
    assert answered >= len(scripts) - 3  # book_update, options_chain, recorder_vs_cryptofeed
