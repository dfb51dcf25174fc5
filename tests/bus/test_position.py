"""The publish position: the acknowledged prefix in (run, per-stream seq) terms, saved whole."""

from __future__ import annotations

from pathlib import Path

from shriven.bus.position import Frontier, Position, load_position, save_position


def test_a_frontier_covers_earlier_runs_and_seqs_up_to_its_own() -> None:
    f = Frontier()
    assert not f.covers(0, "kite", 1)
    f.advance(100, "kite", 5)
    f.advance(100, "system", 1)
    assert f.covers(100, "kite", 5) and not f.covers(100, "kite", 6)
    assert f.covers(99, "binance", 10**9)  # an earlier run: all of it
    assert not f.covers(100, "binance", 1)
    assert not f.covers(101, "kite", 1)
    f.advance(101, "kite", 1)  # a later run starts afresh
    assert f.seqs == {"kite": 1} and f.covers(100, "kite", 10**9)


def test_a_saved_position_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "bus" / "S.position.json"
    pos = Position("rec1", "S", Frontier(7, {"kite": 3}), scan_from=2, scan_run=5, published=9)
    save_position(path, pos)
    loaded, warning = load_position(path, "rec1", "S")
    assert warning == "" and loaded == pos


def test_a_damaged_or_foreign_position_starts_afresh_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text("{not json")
    pos, warning = load_position(path, "rec1", "S")
    assert pos.acked.run == -1 and "cannot read the publish position" in warning
    save_position(path, Position("other", "S", Frontier(7, {"kite": 3})))
    pos, warning = load_position(path, "rec1", "S")
    assert pos.acked.run == -1 and "recorder 'other'" in warning
