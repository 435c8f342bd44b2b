"""The one-process corridor: records move between queues atomically and survive reopening."""

from __future__ import annotations

from pathlib import Path

from pipeline.local_queue import LocalQueue


def test_advance_moves_records_to_the_next_queue(tmp_path: Path) -> None:
    queue = LocalQueue(tmp_path / "q.sqlite3")
    queue.put("raw", [("a", b"1"), ("b", b"2")])
    taken = queue.take("raw", 10)

    queue.advance("raw", taken[:1], "enriched", [("a", b"1!")])

    assert [r.key for r in queue.take("raw", 10)] == ["b"]
    assert [(r.key, r.payload) for r in queue.take("enriched", 10)] == [("a", b"1!")]


def test_a_key_waiting_in_a_queue_is_not_queued_twice(tmp_path: Path) -> None:
    queue = LocalQueue(tmp_path / "q.sqlite3")
    queue.put("raw", [("a", b"first")])
    queue.put("raw", [("a", b"second"), ("b", b"other")])
    assert [(r.key, r.payload) for r in queue.take("raw", 10)] == [("a", b"first"), ("b", b"other")]


def test_records_survive_reopening_and_keep_their_order(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    queue = LocalQueue(path)
    queue.put("raw", [(str(n), str(n).encode()) for n in range(5)])
    queue.close()

    reopened = LocalQueue(path)
    assert [r.key for r in reopened.take("raw", 3)] == ["0", "1", "2"]
    assert reopened.pending("raw") == 5


def test_dead_letter_keeps_bytes_and_error(tmp_path: Path) -> None:
    queue = LocalQueue(tmp_path / "q.sqlite3")
    queue.put("raw", [("bad", b"\xff")])
    [record] = queue.take("raw", 1)

    queue.dead_letter("raw", record, "decode", "not JSON")

    assert queue.pending("raw") == 0
    [dead] = queue.dead_letters()
    assert (dead.name, dead.key, dead.payload, dead.reason, dead.error) == (
        "raw",
        "bad",
        b"\xff",
        "decode",
        "not JSON",
    )


def test_take_after_skips_the_records_in_hand_and_a_reopen_hands_them_out_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "q.sqlite3"
    queue = LocalQueue(path)
    queue.put("raw", [(str(n), b"x") for n in range(5)])
    first = queue.take("raw", 2)
    second = queue.take("raw", 2, after=first[-1].seq)
    assert [r.key for r in first + second] == ["0", "1", "2", "3"]
    queue.advance("raw", second, "enriched", [])  # a later chunk finishing first
    assert [r.key for r in queue.take("raw", 10, after=second[-1].seq)] == ["4"]
    queue.close()
    assert [r.key for r in LocalQueue(path).take("raw", 10)] == ["0", "1", "4"]
