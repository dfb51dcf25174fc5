"""FuturesDepthSync: Binance's futures local-book procedure on synthetic update ids."""

from __future__ import annotations

from shriven.book.depth_sync import APPLY, BUFFERED, GAP, STALE, FuturesDepthSync

# (U, u, pu) of a USD-M-like sequence: ids jump between a symbol's diffs (other symbols take
# them), each diff names the previous one's u.
SEQ = [(100, 110, 90), (117, 130, 110), (141, 141, 130), (150, 162, 141), (170, 175, 162)]


def fed(sync: FuturesDepthSync[int], diffs: list[tuple[int, int, int]]) -> list[int]:
    return [sync.on_diff(U, u, pu, i) for i, (U, u, pu) in enumerate(diffs)]


def test_buffer_snapshot_first_event_straddles_then_pu_chains() -> None:
    sync: FuturesDepthSync[int] = FuturesDepthSync()
    assert fed(sync, SEQ[:3]) == [BUFFERED] * 3
    result = sync.on_snapshot(120)  # inside the second diff
    assert result.usable and not result.gap
    assert result.dropped == 1 and result.apply == [1, 2]
    assert sync.live and sync.last_update_id == 141
    assert sync.on_diff(*SEQ[3], 3) == APPLY


def test_a_first_event_ending_at_last_update_id_is_kept() -> None:
    sync: FuturesDepthSync[int] = FuturesDepthSync()
    fed(sync, SEQ[:2])
    result = sync.on_snapshot(130)  # == u of the second diff: kept (spot would drop it)
    assert result.usable and result.apply == [1] and result.dropped == 1


def test_snapshot_older_than_the_buffer_asks_for_another() -> None:
    sync: FuturesDepthSync[int] = FuturesDepthSync()
    fed(sync, SEQ[1:3])
    assert not sync.on_snapshot(112).usable  # 112 < U=117 and pu=110 != 112
    assert not sync.live and len(sync.buffer) == 2


def test_an_event_continuing_the_snapshot_by_pu_is_applied() -> None:
    sync: FuturesDepthSync[int] = FuturesDepthSync()
    fed(sync, SEQ[1:2])
    assert sync.on_snapshot(110).apply == [0]  # U=117 > 110 but pu == 110


def test_pu_mismatch_while_live_is_a_gap_and_the_event_is_buffered() -> None:
    sync: FuturesDepthSync[int] = FuturesDepthSync()
    fed(sync, SEQ[:1])
    sync.on_snapshot(105)
    assert sync.on_diff(*SEQ[2], 2) == GAP  # the diff ending at 130 is missing
    assert not sync.live and sync.first_buffered_u == 141


def test_a_hole_while_buffering_restarts_the_buffer() -> None:
    sync: FuturesDepthSync[int] = FuturesDepthSync()
    fed(sync, [SEQ[0], SEQ[2], SEQ[3]])  # SEQ[1] missing: SEQ[0] can never be applied
    assert [item[1] for item in sync.buffer] == [141, 162]


def test_backlog_after_a_snapshot_is_stale_not_a_gap() -> None:
    sync: FuturesDepthSync[int] = FuturesDepthSync()
    sync.on_snapshot(150)  # nothing buffered: the reader's backlog follows
    assert sync.live
    assert fed(sync, SEQ[:3]) == [STALE, STALE, STALE]
    assert sync.on_diff(*SEQ[3], 3) == APPLY  # straddles 150


def test_restore_continues_from_a_saved_book_by_pu() -> None:
    sync: FuturesDepthSync[int] = FuturesDepthSync()
    sync.restore(141)
    assert sync.on_diff(*SEQ[3], 3) == APPLY
    assert sync.on_diff(*SEQ[4], 4) == APPLY
    assert sync.invalidate() and not sync.invalidate()


def test_impossible_ids_are_never_buffered_and_break_a_live_book() -> None:
    sync: FuturesDepthSync[int] = FuturesDepthSync()
    assert sync.on_diff(200, 100, 90, 0) == BUFFERED and not sync.buffer
    sync.on_snapshot(105)
    assert sync.on_diff(100, 110, 90, 1) == APPLY
    assert sync.on_diff(300, 200, 110, 2) == GAP and not sync.live
