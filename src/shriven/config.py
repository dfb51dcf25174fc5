"""Settings from the environment, ``.env`` and ``config/shriven.toml`` (in that precedence).

Our own settings use the ``SHRIVEN_`` prefix (nested ones with ``__``, e.g.
``SHRIVEN_PIPELINE__MAX_QUEUE_SIZE``); Zerodha credentials keep their ``ZERODHA_*`` names.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from shriven.errors import ConfigError, CredentialsError, ShrivenError

MiB = 1024 * 1024
DEFAULT_CONFIG_FILE = Path("config/shriven.toml")
# A Binance spot pair as the streams and REST take it (upper case, letters and digits).
BINANCE_SYMBOL = re.compile(r"^[A-Z0-9]{5,20}$")
# A futures contract (BTCUSDT, BTCUSD_PERP, BTCUSDT_250627) or a roll alias
# (BTCUSD_CURRENT_QUARTER): letters, digits and underscores.
FUTURES_SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9_]{4,39}$")
FuturesStream = Literal["depth", "aggTrade", "bookTicker", "markPrice", "forceOrder"]
# SHRIVEN_* variables that are not settings but are still ours.
_OTHER_VARIABLES = frozenset({"SHRIVEN_CONFIG_FILE", "SHRIVEN_FIXTURES"})  # FIXTURES: the tests'


def check_binance_symbols(symbols: list[str]) -> list[str]:
    """The symbols in upper case; ValueError naming the first that is not a Binance pair."""
    upper = [str(s).strip().upper() for s in symbols]
    for symbol in upper:
        if not BINANCE_SYMBOL.match(symbol):
            raise ValueError(f"bad Binance symbol {symbol!r}: use spot pairs like BTCUSDT,ETHUSDT")
    return upper


def check_futures_symbols(symbols: list[str]) -> list[str]:
    """The contracts in upper case; ValueError naming the first that cannot be one."""
    upper = [str(s).strip().upper() for s in symbols]
    for symbol in upper:
        if not FUTURES_SYMBOL.match(symbol):
            raise ValueError(
                f"bad futures symbol {symbol!r}: use contracts like BTCUSDT, BTCUSD_PERP or an "
                "alias like BTCUSD_CURRENT_QUARTER"
            )
    return upper


def _symbol_list(value: object) -> object:
    """Lists from the environment may be JSON (``["A","B"]``) or comma-separated (``A,B``)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return value  # validation then names the setting and the value
    return [part.strip() for part in text.split(",") if part.strip()]


class PipelineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data_dir: Path = Path("./data/market")
    spot_symbols: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["NIFTY 50", "NIFTY BANK"]
    )
    option_strike_range: int = Field(10, ge=0, le=200)
    # Deprecated, ignored: the chain counts listed strikes (see deprecation_warnings).
    strike_interval: dict[str, float] = Field(default_factory=dict)
    option_expiry: Literal["nearest", "next", "monthly"] = "nearest"
    wal_segment_size: int = Field(100 * MiB, ge=64 * 1024)
    snapshot_interval_secs: int = Field(60, ge=1)
    enable_reconstruction: bool = True
    max_queue_size: int = Field(100_000, ge=1)
    # "wait" policy: past this many queued records, feeds wait for the writer's next take
    # (pipeline/queue.py says why: the records in flight, and RSS, stay bounded by it).
    queue_soft_limit: int = Field(2_000, ge=1)
    enable_compression: bool = True
    # "always": fsync after every frame; "interval": at most fsync_interval_ms apart; "never".
    fsync_policy: Literal["always", "interval", "never"] = "interval"
    fsync_interval_ms: int = Field(200, ge=1)
    batch_max_records: int = Field(5_000, ge=1)
    batch_max_ms: float = Field(5.0, gt=0)
    # "wait": adapters wait for room (nothing lost); "drop": drop, count and mark the gap.
    queue_full_policy: Literal["wait", "drop"] = "wait"
    stale_feed_secs: float = Field(30.0, gt=0)
    # Retention inside `run` (as `shriven wal prune`): sealed segments older than this many days,
    # and from the front until the store fits this size (e.g. "200GB"); checked every
    # retention_check_secs. Unset: keep everything.
    retention_keep_days: float | None = Field(None, ge=0)
    retention_keep_size: str | None = None
    retention_check_secs: float = Field(600.0, gt=0)

    @field_validator("retention_keep_size")
    @classmethod
    def _size(cls, v: str | None) -> str | None:
        if v is not None:
            from shriven.sizes import parse_size

            try:
                parse_size(v, "size")
            except ShrivenError as exc:
                raise ValueError(str(exc)) from None
        return v

    @field_validator("spot_symbols", mode="before")
    @classmethod
    def _split_symbols(cls, v: object) -> object:
        return _symbol_list(v)


class ServeConfig(BaseModel):
    """``shriven serve`` and ``run --serve``: where the server binds and its limits."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8788, ge=0, le=65535)
    # Required for any bind address other than loopback; clients send it as access_token
    # (KiteTicker), key=, an X-MBX-APIKEY or Authorization: Bearer header, or a /key/KEY/ prefix.
    api_key: SecretStr | None = None
    max_clients: int = Field(500, ge=1)
    max_subscriptions: int = Field(3000, ge=1)  # per client: Kite tokens or Binance streams
    # A live client with this many bytes unsent (beyond its socket's kernel buffer) is cut
    client_buffer_bytes: int = Field(4 * MiB, ge=64 * 1024)
    history_stall_secs: float = Field(60.0, gt=0)  # a history client reading nothing is cut


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SHRIVEN_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="ignore",
        populate_by_name=True,
    )

    zerodha_api_key: SecretStr | None = Field(None, validation_alias="ZERODHA_API_KEY")
    zerodha_api_secret: SecretStr | None = Field(None, validation_alias="ZERODHA_API_SECRET")
    zerodha_user_id: str | None = Field(None, validation_alias="ZERODHA_USER_ID")
    zerodha_password: SecretStr | None = Field(None, validation_alias="ZERODHA_PASSWORD")
    zerodha_totp_secret: SecretStr | None = Field(None, validation_alias="ZERODHA_TOTP_SECRET")

    kite_api_root: str = "https://api.kite.trade"
    kite_login_root: str = "https://kite.zerodha.com"
    kite_ws_url: str = "wss://ws.kite.trade"
    binance_api_root: str = "https://api.binance.com"
    binance_ws_url: str = "wss://stream.binance.com:9443"

    # Kite ticker: mode per subscription ("full" gives 5-level depth), optionally per instrument
    # class (index, future, option, equity); reconnect backoff bounds; silence before reconnect.
    kite_ticker_mode: Literal["ltp", "quote", "full"] = "full"
    kite_ticker_class_modes: dict[str, Literal["ltp", "quote", "full"]] = Field(
        default_factory=dict
    )
    kite_reconnect_min_secs: float = Field(0.5, gt=0)
    kite_reconnect_max_secs: float = Field(30.0, gt=0)
    kite_heartbeat_timeout_secs: float = Field(10.0, gt=0)
    # After Zerodha rejects the password or TOTP, the same credentials are not posted again for
    # this long (a supervisor restarting us must not lock the account); --force-login overrides.
    kite_login_retry_secs: float = Field(900.0, ge=0)
    kite_force_login: bool = False
    # "HH:MM-HH:MM" (IST): connect (and log in) to Kite only inside this daily window on NSE
    # trading days; held disconnected otherwise (no useless logins on holidays). None: always.
    kite_window: str | None = None

    binance_symbols: Annotated[list[str], NoDecode] = Field(default_factory=list)
    binance_depth_limit: int = Field(1000, ge=5, le=5000)
    binance_depth_interval: Literal["100ms", "1000ms"] = "100ms"
    # Binance spot allows 1024 streams per connection; each symbol takes two (depth, trade).
    binance_max_streams_per_connection: int = Field(1024, ge=2, le=1024)
    binance_reconnect_initial_secs: float = Field(0.5, gt=0)
    binance_reconnect_max_secs: float = Field(30.0, gt=0)
    binance_stall_secs: float = Field(60.0, gt=0)
    binance_rest_max_backoff_secs: float = Field(60.0, gt=0)
    # Spot streams per symbol; "aggTrade" and "bookTicker" may be added.
    binance_streams: Annotated[
        list[Literal["depth", "trade", "aggTrade", "bookTicker"]], NoDecode
    ] = Field(default_factory=lambda: ["depth", "trade"])

    # Binance USD-M (fapi/fstream) and COIN-M (dapi/dstream) futures: venues binance-usdm and
    # binance-coinm. Symbols may be roll aliases (BTCUSD_CURRENT_QUARTER), see docs.
    binance_usdm_api_root: str = "https://fapi.binance.com"
    binance_usdm_ws_url: str = "wss://fstream.binance.com"
    binance_usdm_symbols: Annotated[list[str], NoDecode] = Field(default_factory=list)
    binance_usdm_depth_interval: Literal["0ms", "100ms", "250ms", "500ms"] = "100ms"
    binance_usdm_streams: Annotated[list[FuturesStream], NoDecode] = Field(
        default_factory=lambda: ["depth", "aggTrade", "bookTicker", "markPrice", "forceOrder"]
    )
    binance_coinm_api_root: str = "https://dapi.binance.com"
    binance_coinm_ws_url: str = "wss://dstream.binance.com"
    binance_coinm_symbols: Annotated[list[str], NoDecode] = Field(default_factory=list)
    binance_coinm_depth_interval: Literal["100ms", "250ms", "500ms"] = "100ms"
    binance_coinm_streams: Annotated[list[FuturesStream], NoDecode] = Field(
        default_factory=lambda: ["depth", "aggTrade", "bookTicker", "markPrice", "forceOrder"]
    )
    binance_futures_depth_limit: Literal[5, 10, 20, 50, 100, 500, 1000] = 1000
    # Futures allow 200 streams per connection.
    binance_futures_max_streams_per_connection: int = Field(200, ge=1, le=200)
    # Open interest has no stream: polled by REST this often per symbol (0: not recorded).
    binance_open_interest_secs: float = Field(60.0, ge=0)

    # `shriven wal archive|restore` to s3://...: an S3 API endpoint (None: AWS) and keys (None:
    # boto3's own chain: AWS_* variables, ~/.aws, an instance role).
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None

    cache_dir: Path = Path("./cache")
    market_tz: str = "Asia/Kolkata"
    # Options analytics: the continuously compounded yearly rate that discounts option values
    # (Black-76 on the future; the future carries the drift itself).
    analytics_rate: float = Field(0.065, gt=-1.0, lt=1.0)
    # The recorder's live parity watch (/metrics counters, a status record per violation): on
    # for Kite chains; a violation is a round trip gaining more than this many rupees.
    analytics_live_parity: bool = True
    analytics_parity_threshold: float = Field(1.0, ge=0.0)
    # The live basis watch, on when Binance spot and a perpetual of the same base are recorded:
    # a deviation is a round trip across both spreads gaining more than this (basis points).
    analytics_live_basis: bool = True
    analytics_basis_threshold_bps: float = Field(10.0, ge=0.0)
    health_host: str = "127.0.0.1"
    health_port: int = Field(8787, ge=0, le=65535)

    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)

    # NATS JetStream (`run --publish`, `sink`, `tail`; docs/bus.md). URLs: comma-separated or JSON.
    nats_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    nats_token: SecretStr | None = None
    nats_nkey_seed: SecretStr | None = None
    nats_tls_ca_file: Path | None = None
    nats_tls_cert_file: Path | None = None
    nats_tls_key_file: Path | None = None
    nats_stream: str = "SHRIVEN"
    nats_subject_prefix: str = "shriven"
    nats_recorder_id: str = ""  # empty: the host name
    # limits of the stream `run --publish` creates when it is missing (0 or -1: no limit)
    nats_max_age_secs: float = Field(7 * 86400.0, ge=0)
    nats_max_bytes: int = Field(-1, ge=-1)
    nats_replicas: int = Field(1, ge=1, le=5)
    nats_duplicate_window_secs: float = Field(120.0, gt=0)
    nats_max_in_flight: int = Field(20_000, ge=1)
    nats_ack_timeout_secs: float = Field(5.0, gt=0)
    nats_buffer_records: int = Field(200_000, ge=1)
    # sink: a fetched message not acknowledged this long is delivered again
    nats_sink_ack_wait_secs: float = Field(30.0, gt=0)

    @field_validator(
        "kite_api_root",
        "kite_login_root",
        "binance_api_root",
        "binance_usdm_api_root",
        "binance_coinm_api_root",
    )
    @classmethod
    def _http_url(cls, v: str) -> str:
        return _url(v, ("http://", "https://"))

    @field_validator("kite_ws_url", "binance_ws_url", "binance_usdm_ws_url", "binance_coinm_ws_url")
    @classmethod
    def _ws_url(cls, v: str) -> str:
        return _url(v, ("ws://", "wss://"))

    @field_validator("binance_symbols", mode="before")
    @classmethod
    def _split_binance(cls, v: object) -> object:
        v = _symbol_list(v)
        return check_binance_symbols(v) if isinstance(v, list) else v

    @field_validator("nats_urls", mode="before")
    @classmethod
    def _split_nats_urls(cls, v: object) -> object:
        return _symbol_list(v)

    @field_validator("binance_usdm_symbols", "binance_coinm_symbols", mode="before")
    @classmethod
    def _split_futures(cls, v: object) -> object:
        v = _symbol_list(v)
        return check_futures_symbols(v) if isinstance(v, list) else v

    @field_validator(
        "binance_streams", "binance_usdm_streams", "binance_coinm_streams", mode="before"
    )
    @classmethod
    def _split_streams(cls, v: object) -> object:
        return _symbol_list(v)

    @field_validator("kite_window")
    @classmethod
    def _window(cls, v: str | None) -> str | None:
        if v is not None:
            from shriven.calendar import parse_window

            parse_window(v)
        return v

    @field_validator("kite_ticker_class_modes")
    @classmethod
    def _known_classes(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(v) - {"index", "future", "option", "equity"})
        if unknown:
            raise ValueError(
                f"unknown instrument class {unknown}: use index, future, option, equity"
            )
        return v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_config_file())
        return (init_settings, env_settings, dotenv_settings, toml)

    def require(self, *names: str) -> None:
        """Raise CredentialsError naming every missing variable among ``names`` (field names)."""
        missing = []
        for name in names:
            if not _present(getattr(self, name)):
                alias = type(self).model_fields[name].validation_alias
                missing.append(alias if isinstance(alias, str) else f"SHRIVEN_{name.upper()}")
        if missing:
            raise CredentialsError(
                f"missing {', '.join(missing)}: set "
                f"{'it' if len(missing) == 1 else 'them'} in the environment or in .env "
                "(see .env.example)"
            )


def _url(value: str, schemes: tuple[str, ...]) -> str:
    host = value.split("://", 1)[-1].strip("/")
    if not value.lower().startswith(schemes) or not host or any(c.isspace() for c in value):
        raise ValueError(f"not a URL: give {' or '.join(s + 'host[:port]' for s in schemes)}")
    return value


def _config_file() -> Path:
    return Path(os.environ.get("SHRIVEN_CONFIG_FILE", DEFAULT_CONFIG_FILE))


def _is_mapping(info: object) -> bool:
    return getattr(getattr(info, "annotation", None), "__origin__", None) is dict


def _variable_names() -> tuple[set[str], tuple[str, ...]]:
    """Every SHRIVEN_* variable name a setting reads, and the prefixes under which any name is
    valid (the keys of a mapping setting, e.g. SHRIVEN_KITE_TICKER_CLASS_MODES__OPTION)."""
    names = set(_OTHER_VARIABLES)
    prefixes: list[str] = []
    for name, info in Settings.model_fields.items():
        if isinstance(info.validation_alias, str):
            continue  # ZERODHA_*: not under our prefix
        env = f"SHRIVEN_{name.upper()}"
        names.add(env)
        if _is_mapping(info):
            prefixes.append(env + "__")
    for name, info in PipelineConfig.model_fields.items():
        env = f"SHRIVEN_PIPELINE__{name.upper()}"
        names.add(env)
        if _is_mapping(info):
            prefixes.append(env + "__")
    names |= {f"SHRIVEN_SERVE__{name.upper()}" for name in ServeConfig.model_fields}
    return names, tuple(prefixes)


def _suggest(name: str, valid: set[str], where: str, quote: str = "") -> str:
    # Compared without the prefix every name shares, which would make any two look alike.
    strip = "SHRIVEN_" if name.startswith("SHRIVEN_") else ""
    bare = {v.removeprefix(strip): v for v in valid}
    close = difflib.get_close_matches(name.removeprefix(strip), sorted(bare), n=1, cutoff=0.6)
    if close:
        return f" (did you mean {quote}{bare[close[0]]}{quote}?): rename or remove it"
    return f": nothing reads that name ({where} lists every one); remove it"


def _unknown_setting() -> str | None:
    """The first SHRIVEN_* variable (environment, then .env) or config file key that no setting
    reads, with the closest valid name: pydantic-settings ignores them, so a typo would
    silently leave the default in force."""
    config = _config_file()
    if "SHRIVEN_CONFIG_FILE" in os.environ and not config.exists():
        return (
            f"SHRIVEN_CONFIG_FILE={str(config)!r} does not exist: give the path of a TOML file "
            f"(see config/shriven.example.toml), {os.devnull} for none, or unset it"
        )
    names, prefixes = _variable_names()
    sources: list[tuple[str, dict[str, str | None]]] = [("the environment", dict(os.environ))]
    with contextlib.suppress(OSError, ValueError):
        sources.append((".env", dotenv_values(".env")))
    for where, source in sources:
        for raw in source:
            name = raw.upper()
            if name.startswith("SHRIVEN_") and name not in names and not name.startswith(prefixes):
                return f"unknown setting {raw} in {where}" + _suggest(name, names, ".env.example")
    try:
        document = tomllib.loads(config.read_text(encoding="utf-8")) if config.is_file() else {}
    except (OSError, ValueError):
        return None  # reported with its reason when the settings are read
    top = {n: info for n, info in Settings.model_fields.items()}
    keys = set(top) | {a.lower() for i in top.values() if isinstance(a := i.validation_alias, str)}
    nested = set(PipelineConfig.model_fields)
    nested |= {f"pipeline.{n}" for n in nested}
    example = "config/shriven.example.toml"
    for key, value in document.items():
        if key not in keys:
            return f"unknown key '{key}' in {config}" + _suggest(key, keys, example, "'")
        if key == "pipeline" and isinstance(value, dict):
            for sub in value:
                if sub not in nested:
                    where = f"unknown key 'pipeline.{sub}' in {config}"
                    return where + _suggest(f"pipeline.{sub}", nested, example, "'")
    return None


def _bad_json_variable() -> str | None:
    """The first SHRIVEN_* variable (environment, then .env) holding JSON that does not parse:
    pydantic-settings only names the top-level field ("pipeline") when that happens."""
    sources: list[dict[str, str | None]] = [dict(os.environ)]
    with contextlib.suppress(OSError, ValueError):
        sources.append(dotenv_values(".env"))
    for source in sources:
        for name, value in source.items():
            if not name.upper().startswith("SHRIVEN_") or not value:
                continue
            text = value.strip()
            if text.startswith(("{", "[")):
                try:
                    json.loads(text)
                except json.JSONDecodeError as exc:
                    return f"{name.upper()}={value!r}: not valid JSON ({exc.msg})"
    return None


def _present(value: object) -> bool:
    if isinstance(value, SecretStr):
        return bool(value.get_secret_value())
    return bool(value)


def _env_name(loc: tuple[int | str, ...]) -> str:
    field = str(loc[0]) if loc else "?"
    info = Settings.model_fields.get(field)
    if info is not None and isinstance(info.validation_alias, str):
        return info.validation_alias
    return "SHRIVEN_" + "__".join(str(p).upper() for p in loc)


def load_settings(**overrides: object) -> Settings:
    """Build Settings, turning validation failures into one-line ConfigErrors."""
    unknown = _unknown_setting()
    if unknown is not None:
        raise ConfigError(unknown)
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        name = _env_name(err["loc"])
        value = err.get("input")
        secret = ("ZERODHA" in name and name != "ZERODHA_USER_ID") or name.endswith("API_KEY")
        shown = "(hidden)" if secret else repr(value)
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise ConfigError(
            f"bad setting {name}={shown}: {err['msg']}{more}; fix it in the environment, "
            ".env or config/shriven.toml"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"cannot read {_config_file()}: {exc}; fix the file") from None
    except SettingsError as exc:  # a JSON value (list, map) that does not parse
        bad = _bad_json_variable()
        raise ConfigError(
            f"bad setting {bad}; fix it in the environment or .env"
            if bad
            else f"cannot read settings: {exc}; fix it in the environment, .env or "
            "config/shriven.toml"
        ) from None
    except (OSError, ValueError) as exc:  # e.g. an unreadable file
        raise ConfigError(
            f"cannot read settings: {exc}; fix it in the environment, .env or config/shriven.toml"
        ) from None


def deprecation_warnings(cfg: PipelineConfig) -> list[str]:
    """One line per deprecated setting that is set: what it did and what to do now."""
    if not cfg.strike_interval:
        return []
    return [
        "SHRIVEN_PIPELINE__STRIKE_INTERVAL is ignored: the option chain is counted in listed "
        "strikes (ATM and --strike-range listed strikes each side, whatever their gaps); "
        "remove the setting"
    ]
