"""An nkey seed (SHRIVEN_NATS_NKEY_SEED) authenticates against a real nats-server whose
authorization lists the user's public key; another seed is refused, and a malformed one is a
setting to fix (not a server to retry), each in one line that names the setting and never shows
the seed. The key pairs are made here with nkeys."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import nkeys
import pytest
from pydantic import SecretStr

from shriven.bus.connect import BusConfigError, connect
from shriven.bus.options import BusOptions, Credentials

from .conftest import NatsServer


def _user_seed() -> str:
    return nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER).decode()


def _options(server: NatsServer, seed: str) -> BusOptions:
    return BusOptions((server.url,), credentials=Credentials(nkey_seed=SecretStr(seed)))


def test_an_nkey_seed_connects_and_another_seed_is_refused_in_one_line(tmp_path: Path) -> None:
    seed, stranger = _user_seed(), _user_seed()
    public = nkeys.from_seed(seed.encode()).public_key.decode()
    conf = tmp_path / "nkey.conf"
    conf.write_text(f'authorization {{\n  users = [ {{ nkey: "{public}" }} ]\n}}\n')
    server = NatsServer(tmp_path, "nkey", extra=["-c", str(conf)]).start()

    async def scenario() -> tuple[bool, str]:
        client = await connect(_options(server, seed), name="nkey-test", give_up_after_s=10)
        await client.flush(timeout=5)
        ok = client.is_connected
        await client.close()
        with pytest.raises(BusConfigError) as refused:
            await connect(_options(server, stranger), name="nkey-test", give_up_after_s=3)
        with pytest.raises(BusConfigError) as malformed:  # the public key given as the seed
            await connect(_options(server, public), name="nkey-test", give_up_after_s=3)
        return ok, str(refused.value), str(malformed.value)

    try:
        ok, refused, malformed = asyncio.run(scenario())
    finally:
        server.stop()
    assert ok
    assert "refused our credentials" in refused and "SHRIVEN_NATS_NKEY_SEED" in refused
    assert malformed.startswith("SHRIVEN_NATS_NKEY_SEED is not an nkey seed")
    for line in (refused, malformed):
        assert "\n" not in line and seed not in line and stranger not in line
