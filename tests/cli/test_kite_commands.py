"""`shriven instruments fetch`, `shriven show-subscriptions` and `shriven run --dry-run` against
the loopback Kite simulator: through the real entry point (``shriven.cli.main``) in this process,
with its own environment, working directory, stdout and stderr; the recorder runs and one fetch
are real processes."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from shriven.cli import main
from shriven.cli.app import settings
from shriven.events import KiteTick
from shriven.sim.background import simulator_thread
from shriven.sim.kite_instruments import DESK_SPECS, generate_instruments
from shriven.sim.kite_rest import KiteSimulator
from shriven.universe import build_plan
from shriven.wal import WalWriter


@dataclass
class Env:
    sim: KiteSimulator
    url: str
    home: Path

    def run(
        self,
        *args: str,
        creds: bool = False,
        env: dict[str, str] | None = None,
        process: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        extra = env or {}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ZERODHA_", "SHRIVEN_"))}
        env.update(
            SHRIVEN_KITE_API_ROOT=self.url,
            SHRIVEN_KITE_LOGIN_ROOT=self.url,
            SHRIVEN_CACHE_DIR=str(self.home / "cache"),
            SHRIVEN_CONFIG_FILE=os.devnull,
            SHRIVEN_PIPELINE__DATA_DIR=str(self.home / "data"),
        )
        env.update(extra)
        if creds:
            a = self.sim.account
            env.update(
                ZERODHA_USER_ID=a.user_id,
                ZERODHA_PASSWORD=a.password,
                ZERODHA_TOTP_SECRET=a.totp_secret,
                ZERODHA_API_KEY=a.api_key,
                ZERODHA_API_SECRET=a.api_secret,
            )
        if process:
            return subprocess.run(
                [sys.executable, "-m", "shriven", *args],
                env=env,
                cwd=self.home,  # no stray .env is read
                capture_output=True,
                text=True,
                timeout=120,
            )
        return _in_process(list(args), env, self.home)


def _in_process(
    args: list[str], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """``python -m shriven *args`` without the ~1.5 s of start-up: the same entry point, with
    ``env`` as the whole environment, ``cwd`` as the working directory and settings read anew."""
    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_argv, saved_cwd = dict(os.environ), sys.argv, os.getcwd()
    code: object = 0
    try:
        os.environ.clear()
        os.environ.update(env)
        os.chdir(cwd)  # no stray .env is read
        sys.argv = ["shriven", *args]
        settings.cache_clear()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
            except SystemExit as exc:
                code = exc.code
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        settings.cache_clear()
    returncode = code if isinstance(code, int) else (0 if code is None else 1)
    return subprocess.CompletedProcess(args, returncode, out.getvalue(), err.getvalue())


@pytest.fixture()
def cli(tmp_path: Path) -> Iterator[Env]:
    sim = KiteSimulator(seed=2)  # listed as of today, so the plan is live now
    with simulator_thread(sim) as url:
        yield Env(sim, url, tmp_path)


def test_instruments_fetch_then_fresh_then_force(cli: Env) -> None:
    first = cli.run("instruments", "fetch", process=True)  # as a real process, once
    assert first.returncode == 0, first.stderr
    assert f"fetched {len(cli.sim.instruments)} instruments" in first.stdout
    assert (cli.home / "cache" / "instruments" / "metadata.json").exists()
    again = cli.run("instruments", "fetch")
    assert "instrument cache is fresh" in again.stdout and cli.sim.count("/instruments") == 1
    forced = cli.run("instruments", "fetch", "--force")
    assert forced.returncode == 0 and cli.sim.count("/instruments") == 2


def test_truncated_dump_fails_with_a_one_line_error(cli: Env) -> None:
    cli.sim.truncate_dump = True
    r = cli.run("instruments", "fetch")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("shriven: error: the instrument dump is")


def test_show_subscriptions_table_for_nifty_at_25000(cli: Env) -> None:
    r = cli.run("show-subscriptions", "NIFTY 50", "--spot", "25000")
    assert r.returncode == 0, r.stderr
    plan = build_plan(cli.sim.instruments, "NIFTY 50", 25_000, as_of=datetime.now(UTC))
    out = r.stdout
    assert "NIFTY 50 (underlying NIFTY): spot 25,000.00 from --spot" in out
    assert "45 instruments: 1 spot, 2 futures, 21 calls, 21 puts" in out
    for ins in (plan.spot, *plan.futures, plan.calls[0], plan.puts[-1]):
        assert f"{ins.instrument_token} " in out and ins.tradingsymbol in out
    atm_line = next(line for line in out.splitlines() if line.startswith("*"))
    assert "25000" in atm_line and "CE" in atm_line and "PE" in atm_line


def test_show_subscriptions_json_with_options(cli: Env) -> None:
    r = cli.run(
        "show-subscriptions", "NIFTY BANK", "--spot", "52040", "--strike-range", "3",
        "--expiry", "next", "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["count"] == 1 + 2 + 7 + 7 and len(doc["tokens"]) == doc["count"]
    assert doc["spot"]["instrument_token"] == 260105 and doc["atm_strike"] == 52_000
    assert doc["expiry_choice"] == "next" and doc["spot_source"] == "--spot"
    assert [c["strike"] for c in doc["calls"]] == [51_700 + 100 * k for k in range(7)]


def test_unknown_symbol_lists_closest_names(cli: Env) -> None:
    r = cli.run("show-subscriptions", "NIFTY BNK", "--spot", "1")
    assert r.returncode == 2
    assert "unknown spot symbol 'NIFTY BNK'" in r.stderr and "'NIFTY BANK'" in r.stderr


def test_without_spot_or_credentials_says_what_to_pass(cli: Env) -> None:
    r = cli.run("show-subscriptions", "NIFTY 50")
    assert r.returncode == 2 and "pass --spot PRICE" in r.stderr


def test_without_spot_uses_kite_ltp_when_credentials_exist(cli: Env) -> None:
    cli.sim.prices[256265] = 24_810.4
    r = cli.run("show-subscriptions", "NIFTY 50", "--strike-range", "1", creds=True)
    assert r.returncode == 0, r.stderr
    assert "spot 24,810.40 from Kite LTP" in r.stdout and "ATM 24800" in r.stdout
    assert cli.sim.account.password not in r.stdout + r.stderr
    cache = cli.home / "cache" / "zerodha" / "zerodha_token_AB1234.json"
    assert oct(cache.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("price", ["24810.4", float("nan"), True])
def test_kite_ltp_answer_that_is_not_a_finite_number_is_no_price(cli: Env, price: object) -> None:
    cli.sim.prices[256265] = price  # type: ignore[assignment]
    r = cli.run("show-subscriptions", "NIFTY 50", "--strike-range", "1", creds=True)
    assert r.returncode == 2 and "returned no price for NSE:NIFTY 50; pass --spot PRICE" in r.stderr
    assert "Traceback" not in r.stderr


def test_run_dry_run_prints_plans_and_connections(cli: Env) -> None:
    r = cli.run("run", "--dry-run", "--strike-range", "5", creds=True)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "NIFTY 50 (underlying NIFTY)" in out and "NIFTY BANK (underlying BANKNIFTY)" in out
    assert "Kite: 50 instruments for 2 symbol(s) over 1 websocket connection(s)" in out
    assert "connection 1: 50 instruments" in out
    assert "dry run: nothing was connected or recorded" in out
    assert cli.sim.count("/ws") == 0


def test_run_dry_run_with_symbols_and_spots_needs_no_credentials(cli: Env) -> None:
    r = cli.run(
        "run", "--dry-run", "--venue", "kite", "--symbols", "NIFTY FIN SERVICE,NIFTY 50", "--spot",
        "NIFTY FIN SERVICE=24000", "--spot", "nifty 50=25000",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "NIFTY FIN SERVICE (underlying FINNIFTY): spot 24,000.00" in r.stdout
    assert "Kite: 90 instruments for 2 symbol(s)" in r.stdout


def test_run_dry_run_rejects_a_bad_spot_and_says_which_to_pass(cli: Env) -> None:
    bad = cli.run("run", "--dry-run", "--spot", "25000")
    assert bad.returncode == 2 and "SYMBOL=PRICE" in bad.stderr
    no_price = cli.run("run", "--dry-run")
    assert no_price.returncode == 2 and "pass --spot 'NIFTY 50=PRICE'" in no_price.stderr


def test_show_subscriptions_with_spot_does_not_log_in_when_instruments_are_fresh(
    cli: Env,
) -> None:
    assert cli.run("instruments", "fetch").returncode == 0
    r = cli.run("show-subscriptions", "NIFTY 50", "--spot", "25000", creds=True)
    assert r.returncode == 0, r.stderr
    assert cli.sim.count("/api/login") == 0


def test_without_spot_or_credentials_uses_the_last_recorded_tick(cli: Env) -> None:
    now = time.time_ns()
    with WalWriter(cli.home / "data" / "ticks", segment_size=1 << 20) as wal:
        wal.append(
            [
                KiteTick(now - 2_000, 1, 256265, "full", 2_498_000),
                KiteTick(now - 1_000, 2, 256265, "full", 2_503_125),
            ]
        )
    r = cli.run("show-subscriptions", "NIFTY 50", "--strike-range", "1")
    assert r.returncode == 0, r.stderr
    assert "spot 25,031.25 from last tick recorded in" in r.stdout and "ATM 25050" in r.stdout
    when = datetime.fromtimestamp((now - 1_000) / 1e9, ZoneInfo("Asia/Kolkata"))
    assert f"at {when:%Y-%m-%d %H:%M:%S} IST" in r.stdout  # it may be days old: say when


# ---------------------------------------------------------------- the chain a desk expects


def chain_strikes(out: str) -> list[float]:
    """The strike column of a printed plan."""
    rows = [re.match(r"[* ] +(\d+(?:\.\d+)?)  +(\d+|-) ", line) for line in out.splitlines()]
    return [float(m[1]) for m in rows if m]


def test_nifty_far_from_the_money_gets_21_strikes_per_type_under_the_default_config(
    cli: Env,
) -> None:
    # Far out NIFTY lists strikes 100 apart; counting 50-point intervals gave 11.
    r = cli.run("show-subscriptions", "NIFTY 50", "--spot", "27987.5")
    assert r.returncode == 0, r.stderr
    assert chain_strikes(r.stdout) == [27_000.0 + 100 * k for k in range(21)]
    assert "45 instruments: 1 spot, 2 futures, 21 calls, 21 puts" in r.stdout
    assert "ATM 28000 (the listed strike nearest spot)" in r.stdout
    assert "+-10 listed strikes: 10 below, 10 above (gap near the money 100)" in r.stdout


def test_banknifty_among_its_500_point_strikes_plans_at_range_0_and_1(cli: Env) -> None:
    zero = cli.run("show-subscriptions", "NIFTY BANK", "--spot", "60100", "--strike-range", "0")
    assert zero.returncode == 0, zero.stderr
    assert chain_strikes(zero.stdout) == [60_000.0]
    one = cli.run("show-subscriptions", "NIFTY BANK", "--spot", "60100", "--strike-range", "1")
    assert one.returncode == 0, one.stderr
    assert chain_strikes(one.stdout) == [59_500.0, 60_000.0, 60_500.0]


def test_a_short_side_of_the_chain_is_a_warning_line_in_the_plan(cli: Env) -> None:
    r = cli.run("show-subscriptions", "NIFTY BANK", "--spot", "65900", "--strike-range", "3")
    assert r.returncode == 0, r.stderr
    assert chain_strikes(r.stdout) == [64_500.0, 65_000.0, 65_500.0, 66_000.0]
    assert (
        "  warning: only 0 listed BANKNIFTY strike(s) above ATM 66000 for " in r.stdout
    ) and r.stdout.count("warning:") == 1
    doc = json.loads(
        cli.run(
            "show-subscriptions", "NIFTY BANK", "--spot", "65900", "--strike-range", "3", "--json"
        ).stdout
    )
    assert (doc["strikes_below"], doc["strikes_above"]) == (3, 0) and len(doc["warnings"]) == 1


def test_run_dry_run_resolves_symbols_and_spot_overrides_one_way(cli: Env) -> None:
    # --symbols and --spot spelled differently name one index: no LTP needed, no credentials.
    r = cli.run(
        "run",
        "--dry-run",
        "--venue",
        "kite",
        "--symbols",
        "NSE:NIFTY 50,NIFTY 50",
        "--spot",
        "nifty 50=25000",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("NSE:NIFTY 50 (underlying NIFTY): spot 25,000.00 from --spot") == 1
    assert "Kite: 45 instruments for 1 symbol(s)" in r.stdout


def test_the_deprecated_strike_interval_is_ignored_with_a_warning(cli: Env) -> None:
    env = {"SHRIVEN_PIPELINE__STRIKE_INTERVAL": '{"NIFTY 50": 100}'}
    r = cli.run("show-subscriptions", "NIFTY 50", "--spot", "25000", "--strike-range", "1", env=env)
    assert r.returncode == 0, r.stderr
    assert chain_strikes(r.stdout) == [24_950.0, 25_000.0, 25_050.0]
    warning = [line for line in r.stderr.splitlines() if "STRIKE_INTERVAL" in line]
    assert len(warning) == 1 and warning[0].startswith("warning: ") and "ignored" in warning[0]
    dry = cli.run("run", "--dry-run", "--spot", "NIFTY 50=25000", "--spot", "NIFTY BANK=52000",
                  env=env)  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert "STRIKE_INTERVAL is ignored" in dry.stderr


@pytest.fixture()
def desk_cli(tmp_path: Path) -> Iterator[Env]:
    """The simulator serving SENSEX and RELIANCE too (RELIANCE's BSE row listed first)."""
    rows = generate_instruments(datetime.now(UTC).date(), DESK_SPECS, seed=2)
    sim = KiteSimulator(instruments=rows)
    with simulator_thread(sim) as url:
        yield Env(sim, url, tmp_path)


def test_a_stock_prefers_nse_and_an_exchange_prefix_chooses_bse(desk_cli: Env) -> None:
    nse = desk_cli.run("show-subscriptions", "RELIANCE", "--spot", "1450", "--strike-range", "2")
    assert nse.returncode == 0, nse.stderr
    assert "NSE:RELIANCE (underlying RELIANCE)" in nse.stdout and " 738561 " in nse.stdout
    # strikes off the 10-rupee grid are listed strikes like any other
    assert chain_strikes(nse.stdout) == [1_440.0, 1_447.5, 1_450.0, 1_457.5, 1_460.0]
    bse = desk_cli.run("show-subscriptions", "BSE:RELIANCE", "--spot", "1450")
    assert bse.returncode == 0, bse.stderr
    assert "BSE:RELIANCE (underlying RELIANCE)" in bse.stdout and " 128083204 " in bse.stdout
    wrong = desk_cli.run("show-subscriptions", "BSE:NIFTY 50", "--spot", "25000")
    assert wrong.returncode == 2
    assert "'NIFTY 50' is not listed on BSE, only on NSE: write NSE:NIFTY 50" in wrong.stderr


def test_sensex_plans_bse_weekly_options(desk_cli: Env) -> None:
    r = desk_cli.run("show-subscriptions", "SENSEX", "--spot", "82000", "--strike-range", "1")
    assert r.returncode == 0, r.stderr
    assert "BSE:SENSEX (underlying SENSEX)" in r.stdout
    assert chain_strikes(r.stdout) == [81_900.0, 82_000.0, 82_100.0]


def test_run_after_a_refused_password_does_not_post_it_again_unless_forced(cli: Env) -> None:
    cli.sim.reject_password = True
    args = ("run", "--venue", "kite", "--health-port", "-1", "--duration", "1", "--quiet")
    # real processes: each supervisor restart is a new process (the data-dir lock goes with it)
    first = cli.run(*args, creds=True, process=True)
    assert first.returncode == 2, first.stderr[-2000:]
    assert "will not be tried again before" in first.stderr
    assert cli.sim.count("/api/login") == 1
    second = cli.run(*args, creds=True, process=True)  # the supervisor's restart
    assert second.returncode == 2
    said = [line for line in second.stderr.splitlines() if "not posting the same" in line]
    assert len(said) == 1 and "--force-login" in said[0], second.stderr[-2000:]
    assert "Traceback" not in second.stderr
    assert cli.sim.count("/api/login") == 1
    forced = cli.run(*args, "--force-login", creds=True, process=True)
    assert forced.returncode == 2
    assert cli.sim.count("/api/login") == 2
