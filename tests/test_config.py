from __future__ import annotations

import subprocess
import sys

import pytest

from shriven.config import load_settings
from shriven.errors import ConfigError, CredentialsError


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("ZERODHA_API_KEY", "ZERODHA_API_SECRET", "ZERODHA_USER_ID"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_match_the_design():
    s = load_settings()
    p = s.pipeline
    assert p.option_strike_range == 10
    assert p.strike_interval == {}  # deprecated and ignored
    assert p.wal_segment_size == 100 * 1024 * 1024
    assert p.snapshot_interval_secs == 60
    assert p.max_queue_size == 100_000
    assert p.enable_compression and p.enable_reconstruction
    assert s.kite_ws_url == "wss://ws.kite.trade"


def test_environment_overrides_endpoints_and_nested_values(monkeypatch):
    monkeypatch.setenv("SHRIVEN_KITE_WS_URL", "ws://127.0.0.1:9999/")
    monkeypatch.setenv("SHRIVEN_PIPELINE__MAX_QUEUE_SIZE", "42")
    monkeypatch.setenv("SHRIVEN_PIPELINE__SPOT_SYMBOLS", '["NIFTY 50"]')
    s = load_settings()
    assert s.kite_ws_url == "ws://127.0.0.1:9999/"
    assert s.pipeline.max_queue_size == 42
    assert s.pipeline.spot_symbols == ["NIFTY 50"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("", []), ("BTCUSDT, ethusdt", ["BTCUSDT", "ETHUSDT"]), ('["BTCUSDT"]', ["BTCUSDT"])],
)
def test_symbol_lists_from_the_environment_are_json_or_comma_separated(monkeypatch, raw, expected):
    monkeypatch.setenv("SHRIVEN_BINANCE_SYMBOLS", raw)
    monkeypatch.setenv("SHRIVEN_PIPELINE__SPOT_SYMBOLS", "NIFTY 50,NIFTY FIN SERVICE")
    s = load_settings()
    assert s.binance_symbols == expected
    assert s.pipeline.spot_symbols == ["NIFTY 50", "NIFTY FIN SERVICE"]


def test_unparseable_structured_value_is_one_line(monkeypatch):
    monkeypatch.setenv("SHRIVEN_KITE_TICKER_CLASS_MODES", "{not json")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "bad setting SHRIVEN_KITE_TICKER_CLASS_MODES='{not json': not valid JSON" in str(
        err.value
    )
    assert "\n" not in str(err.value)


def test_unparseable_nested_json_names_the_variable_not_the_group(monkeypatch):
    monkeypatch.setenv("SHRIVEN_PIPELINE__STRIKE_INTERVAL", '{"NIFTY 50": 50')
    with pytest.raises(
        ConfigError, match=r"SHRIVEN_PIPELINE__STRIKE_INTERVAL='\{\"NIFTY 50\": 50'"
    ):
        load_settings()


def test_unparseable_json_in_dotenv_is_named_too(tmp_path):
    (tmp_path / ".env").write_text("SHRIVEN_PIPELINE__STRIKE_INTERVAL={oops\n")
    with pytest.raises(ConfigError, match=r"SHRIVEN_PIPELINE__STRIKE_INTERVAL='\{oops'"):
        load_settings()


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("SHRIVEN_KITE_API_ROOT", "api.kite.trade", "http://host[:port] or https://host[:port]"),
        ("SHRIVEN_BINANCE_API_ROOT", "wss://api.binance.com", "http://host[:port]"),
        ("SHRIVEN_KITE_WS_URL", "https://ws.kite.trade", "ws://host[:port] or wss://host[:port]"),
        ("SHRIVEN_BINANCE_WS_URL", "", "ws://host[:port]"),
    ],
)
def test_an_endpoint_that_is_not_a_url_of_its_kind_is_refused(monkeypatch, name, value, allowed):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert f"bad setting {name}={value!r}" in str(err.value) and allowed in str(err.value)


def test_malformed_toml_names_the_file(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "shriven.toml").write_text("[pipeline\nmax_queue_size = 5\n")
    with pytest.raises(
        ConfigError, match=r"cannot read config/shriven.toml: .*line 1.*fix the file"
    ):
        load_settings()


def test_toml_file_is_read_and_environment_wins(tmp_path, monkeypatch):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "shriven.toml").write_text(
        'binance_symbols = ["BTCUSDT"]\n[pipeline]\nsnapshot_interval_secs = 30\n'
        "max_queue_size = 7\n"
    )
    monkeypatch.setenv("SHRIVEN_PIPELINE__MAX_QUEUE_SIZE", "9")
    s = load_settings()
    assert s.binance_symbols == ["BTCUSDT"]
    assert s.pipeline.snapshot_interval_secs == 30
    assert s.pipeline.max_queue_size == 9


def test_bad_value_names_setting_value_and_rule(monkeypatch):
    monkeypatch.setenv("SHRIVEN_PIPELINE__MAX_QUEUE_SIZE", "lots")
    with pytest.raises(ConfigError) as err:
        load_settings()
    msg = str(err.value)
    assert "SHRIVEN_PIPELINE__MAX_QUEUE_SIZE='lots'" in msg
    assert "valid integer" in msg
    assert "\n" not in msg


def test_secret_values_are_never_echoed_in_errors_or_repr(monkeypatch):
    monkeypatch.setenv("ZERODHA_API_SECRET", "hunter2-very-secret")
    s = load_settings()
    assert "hunter2" not in repr(s)
    assert s.zerodha_api_secret.get_secret_value() == "hunter2-very-secret"


def test_missing_credentials_are_named():
    s = load_settings()
    with pytest.raises(CredentialsError, match="missing ZERODHA_API_KEY, ZERODHA_USER_ID"):
        s.require("zerodha_api_key", "zerodha_user_id")


def test_cli_prints_one_line_for_a_bad_setting(tmp_path):
    env = {"SHRIVEN_PIPELINE__SNAPSHOT_INTERVAL_SECS": "0", "PATH": "/usr/bin:/bin"}
    code = "from shriven.cli.app import settings; settings()"
    wrapped = (
        "import sys\nfrom shriven.errors import ShrivenError\n"
        f"try:\n    exec({code!r})\nexcept ShrivenError as e:\n"
        "    print(f'shriven: error: {e}', file=sys.stderr); sys.exit(e.exit_code)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", wrapped], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "SHRIVEN_PIPELINE__SNAPSHOT_INTERVAL_SECS='0'" in lines[0]
    assert "greater than or equal to 1" in lines[0]


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("SHRIVEN_PIPELINE__DATA_DRI", "(did you mean SHRIVEN_PIPELINE__DATA_DIR?)"),
        ("SHRIVEN_PIPELINE_DATA_DIR", "(did you mean SHRIVEN_PIPELINE__DATA_DIR?)"),
        ("SHRIVEN_BINANCE_SYMBOL", "(did you mean SHRIVEN_BINANCE_SYMBOLS?)"),
        ("SHRIVEN_ZZZ", "nothing reads that name (.env.example lists every one)"),
    ],
)
def test_an_unknown_variable_is_named_with_the_closest_setting(monkeypatch, name, says):
    monkeypatch.setenv(name, "x")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert str(err.value).startswith(f"unknown setting {name} in the environment")
    assert says in str(err.value)


def test_an_unknown_variable_in_dotenv_is_named_too(tmp_path):
    (tmp_path / ".env").write_text("SHRIVEN_HEALTHPORT=9000\n")
    with pytest.raises(
        ConfigError, match=r"SHRIVEN_HEALTHPORT in \.env \(did you mean SHRIVEN_HEA"
    ):
        load_settings()


def test_mapping_settings_take_their_keys_from_variable_names(monkeypatch):
    monkeypatch.setenv("SHRIVEN_KITE_TICKER_CLASS_MODES__OPTION", "quote")
    assert load_settings().kite_ticker_class_modes == {"option": "quote"}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("binance_symbol = ['BTCUSDT']\n", "unknown key 'binance_symbol' in {f} (did you mean "
         "'binance_symbols'?)"),
        ("[pipeline]\ndata_dri = 'x'\n", "unknown key 'pipeline.data_dri' in {f} (did you mean "
         "'pipeline.data_dir'?)"),
    ],
)  # fmt: skip
def test_an_unknown_config_file_key_is_named_with_the_closest(tmp_path, monkeypatch, text, says):
    config = tmp_path / "shriven.toml"
    config.write_text(text)
    monkeypatch.setenv("SHRIVEN_CONFIG_FILE", str(config))
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert says.format(f=config) in str(err.value)


def test_a_config_file_that_does_not_exist_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SHRIVEN_CONFIG_FILE", str(tmp_path / "typo.toml"))
    with pytest.raises(ConfigError, match=r"typo\.toml' does not exist"):
        load_settings()


@pytest.mark.parametrize("value", ["BTC USDT", "BTCUSDT,ETH-USDT", '["BTC/USDT"]'])
def test_binance_symbols_from_settings_are_checked_like_the_option(monkeypatch, value):
    monkeypatch.setenv("SHRIVEN_BINANCE_SYMBOLS", value)
    with pytest.raises(ConfigError, match=r"bad Binance symbol .*: use spot pairs like BTCUSDT"):
        load_settings()
