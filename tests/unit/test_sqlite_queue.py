"""The embedded queue of `newsmon run`: records survive reopening; publishing is atomic."""

from __future__ import annotations

from pathlib import Path

from pipeline.corridor.records import Message
from pipeline.corridor.sqlite.queue import DeadLetter, LocalQueue


def _key(record: Message) -> str:
    return (record.key or b"").decode()


def test_publish_then_remove_moves_records_to_the_next_queue(tmp_path: Path) -> None:
    queue = LocalQueue(tmp_path / "q.sqlite3")
    queue.put("raw", [("a", b"1"), ("b", b"2")])
    taken = queue.take("raw", 10)

    queue.publish({"enriched": [("a", b"1!")]}, [])
    queue.remove([taken[0].offset])

    assert [_key(r) for r in queue.take("raw", 10)] == ["b"]
    assert [(_key(r), r.value) for r in queue.take("enriched", 10)] == [("a", b"1!")]


def test_a_key_waiting_in_a_queue_is_not_queued_twice(tmp_path: Path) -> None:
    queue = LocalQueue(tmp_path / "q.sqlite3")
    queue.put("raw", [("a", b"first")])
    queue.put("raw", [("a", b"second"), ("b", b"other")])
    assert [(_key(r), r.value) for r in queue.take("raw", 10)] == [("a", b"first"), ("b", b"other")]


def test_records_survive_reopening_and_keep_their_order(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    queue = LocalQueue(path)
    queue.put("raw", [(str(n), str(n).encode()) for n in range(5)])
    queue.close()

    reopened = LocalQueue(path)
    assert [_key(r) for r in reopened.take("raw", 3)] == ["0", "1", "2"]
    assert reopened.pending("raw") == 5


def test_dead_letter_keeps_bytes_and_error(tmp_path: Path) -> None:
    queue = LocalQueue(tmp_path / "q.sqlite3")
    queue.put("raw", [("bad", b"\xff")])
    [record] = queue.take("raw", 1)

    queue.publish({}, [DeadLetter("raw", _key(record), record.value, "decode", "not JSON")])
    queue.remove([record.offset])

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
    second = queue.take("raw", 2, after=first[-1].offset)
    assert [_key(r) for r in first + second] == ["0", "1", "2", "3"]
    queue.remove([r.offset for r in second])  # a later chunk finishing first
    assert [_key(r) for r in queue.take("raw", 10, after=second[-1].offset)] == ["4"]
    queue.close()
    assert [_key(r) for r in LocalQueue(path).take("raw", 10)] == ["0", "1", "4"]
