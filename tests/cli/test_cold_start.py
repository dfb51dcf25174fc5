"""A read command's start-up imports only what it needs: no settings, no structlog, no scipy
until a command asks for them; logging set up lazily still renders and scrubs every line."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("pydantic_settings", "structlog", "scipy", "requests", "pyarrow", "kiteconnect")


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


def test_importing_the_cli_loads_no_settings_logging_or_analytics_stack():
    done = _run(f"import sys, shriven.cli\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_replay_package_loads_a_name_from_its_module_only():
    done = _run(
        "import sys\n"
        "from shriven.replay import format_ns, replay_chain\n"
        "print('shriven.replay.times' in sys.modules, 'shriven.replay.chain' in sys.modules)\n"
        "import shriven.replay as r\n"
        "try:\n"
        "    r.no_such_name\n"
        "except AttributeError as exc:\n"
        "    print(exc)"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "True True",
        "module 'shriven.replay' has no attribute 'no_such_name'",
    ]


def test_deferred_logging_renders_and_scrubs_the_first_library_and_own_lines():
    done = _run(
        "import logging, sys\n"
        "from shriven.logging import configure_logging, get_logger\n"
        "configure_logging('info')\n"
        "print('structlog' in sys.modules)\n"
        "logging.getLogger('urllib3').debug('hidden at info')\n"
        "logging.getLogger('urllib3').warning('GET /?access_token=TOKEN456')\n"
        "get_logger('t').info('connecting', password='hunter2')\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"  # configured, but structlog not imported yet
    err = done.stderr
    assert "hidden at info" not in err
    assert "access_token=***" in err and "TOKEN456" not in err
    assert "connecting" in err and "hunter2" not in err
    assert err.count("[warning") == 1 and err.count("[info") == 1


def test_a_command_builds_and_imports_only_its_own_cli_module_and_no_pydantic(tmp_path):
    (tmp_path / "ticks").mkdir()
    argv = ["shriven", "replay", "book", "--symbol", "binance:BTCUSDT", "--depth", "3"]
    argv += ["--at", "2026-01-01T00:00:00", "--data-dir", str(tmp_path), "--tz", "UTC"]
    done = _run(
        f"import sys\nsys.argv = {argv!r}\nfrom shriven.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    print(exc.code)\n"
        "print(sorted(m for m in sys.modules if m.startswith(('shriven.cli.', 'pydantic'))))"
    )
    code, modules = done.stdout.splitlines()
    assert code == "1", done.stderr  # nothing recorded: the command ran, every option converted
    assert "no book of binance:BTCUSDT" in done.stderr
    # replay.py registers `wal verify-books`, so it imports wal.py; no other command module
    assert modules == str(
        ["shriven.cli.app", "shriven.cli.plain_params", "shriven.cli.replay", "shriven.cli.tree",
         "shriven.cli.wal"]
    )  # fmt: skip


def test_the_live_parity_watch_every_kite_run_adds_loads_no_numpy_or_scipy():
    # every `shriven run` with Kite (--sim included) adds it; the chain's IV is replay's only
    done = _run(
        "import sys, shriven.app.parity_tap\nprint('numpy' in sys.modules, 'scipy' in sys.modules)"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]
