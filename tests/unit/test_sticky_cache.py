"""The per-process hint of contacts' sticky instances (worker/sticky_cache.py)."""

from __future__ import annotations

import pytest

from tests.concurrency import run_on_threads
from worker.sticky_cache import StickyCache


def test_a_contact_without_an_instance_is_forgotten() -> None:
    cache = StickyCache()
    assert cache.get("doc") is None
    cache.put("doc", "a")
    assert cache.get("doc") == "a"
    cache.put("doc", None)  # its number was banned: routed as a new contact again
    assert (cache.get("doc"), len(cache)) == (None, 0)


def test_the_oldest_written_entry_goes_first_when_full() -> None:
    cache = StickyCache(max_entries=3)
    for n in range(3):
        cache.put(f"c{n}", "a")
    cache.put("c0", "b")  # rewritten: now the newest
    cache.put("c3", "a")
    assert cache.get("c1") is None
    assert [cache.get(c) for c in ("c0", "c2", "c3")] == ["b", "a", "a"]
    assert len(cache) == 3


def test_writers_on_many_threads_keep_it_bounded() -> None:
    cache = StickyCache(max_entries=100)

    def write(n: int) -> None:
        for i in range(2_000):
            cache.put(f"{n}-{i}", "a" if i % 2 else None)
            cache.get(f"{n}-{i // 2}")

    run_on_threads(write, [(n,) for n in range(8)])
    assert len(cache) <= 100


def test_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        StickyCache(max_entries=0)


def test_unknown_contacts_are_guessed_new_only_while_most_turn_out_new() -> None:
    cache = StickyCache()
    assert not cache.guess_unknown_are_new()  # a fresh worker asks the database first
    for _ in range(20):
        cache.learn_unknown(was_new=True)  # new doctors: guessing pays off
    assert cache.guess_unknown_are_new()
    for _ in range(20):
        cache.learn_unknown(was_new=False)  # known doctors this worker never saw
    assert not cache.guess_unknown_are_new()


def test_one_surprise_does_not_flip_the_policy() -> None:
    cache = StickyCache()
    for _ in range(50):
        cache.learn_unknown(was_new=True)
    for _ in range(5):
        cache.learn_unknown(was_new=False)
    assert cache.guess_unknown_are_new()
