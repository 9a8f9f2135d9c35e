"""The cache of derived arrays (``rules.derived``): the sentiment model read from it is the
model made from its file, and no state of the cache can make a load fail or differ."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rules import derived
from rules.sentiment import polarities
from rules.weibo_sentiment import WeiboSentiment

TEXTS = ["这家店的外卖太慢了，再也不来了", "服务很好，点赞！", "今天下雨了", "", "😡😡"]


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "crisismon"


def same(a: WeiboSentiment, b: WeiboSentiment) -> None:
    assert a._w.dtype == b._w.dtype == np.float32 and a._w.flags.c_contiguous
    assert np.array_equal(a._w, b._w) and np.array_equal(a._bias, b._bias)
    assert a.meta == b.meta and a.bits == b.bits and a.classes == b.classes
    assert polarities(a, TEXTS) == polarities(b, TEXTS)


def entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("weibo-sentiment-*.arrays"))


def test_a_second_load_reads_the_table_made_by_the_first(cache: Path) -> None:
    made = WeiboSentiment.load()
    [entry] = entries(cache)
    stamp = entry.stat().st_mtime_ns
    again = WeiboSentiment.load()
    same(made, again)
    assert entry.stat().st_mtime_ns == stamp  # read, not made and written again


def test_a_changed_model_file_finds_no_entry(cache: Path, tmp_path: Path) -> None:
    shipped = WeiboSentiment.load()
    shipped.meta = {**shipped.meta, "note": "retrained"}
    shipped._bias = shipped._bias + 0.5
    changed = tmp_path / "model.msgpack.gz"
    shipped.save(changed)
    got = WeiboSentiment.load(changed)
    assert len(entries(cache)) == 2  # an entry of its own
    assert got.meta["note"] == "retrained" and np.array_equal(got._bias, shipped._bias)
    same(got, WeiboSentiment.load(changed))
    assert derived.key("a", b"bc") != derived.key("ab", b"c")  # parts kept apart


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_a_damaged_entry_is_made_again(cache: Path, damage: str) -> None:
    made = WeiboSentiment.load()
    [entry] = entries(cache)
    body = entry.read_bytes()
    entry.write_bytes({"garbage": b"\x00not a zip" * 100, "truncated": body[:len(body) // 2],
                       "empty": b""}[damage])
    again = WeiboSentiment.load()
    same(made, again)
    assert entry.read_bytes() == body  # and written whole again


def test_an_entry_without_an_array_is_made_again(cache: Path) -> None:
    made = WeiboSentiment.load()
    [entry] = entries(cache)
    name = entry.name[len("weibo-sentiment-"):-len(derived.SUFFIX)]
    # No bias, no meta, a weight table of a bad shape.
    derived.store("weibo-sentiment", name, {"weights": np.zeros(3, dtype=np.float32)})
    same(made, WeiboSentiment.load())


def test_no_cache_folder_to_write_is_no_cache(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    made = WeiboSentiment.load()
    same(made, WeiboSentiment.load())
    assert blocker.read_text(encoding="utf-8") == "not a folder"


def test_the_text_tables_read_back_are_those_built(cache: Path) -> None:
    """``rules.textnorm``'s per-code-point tables: built and kept by the first use, read
    back by the next; the same arrays either way (and as built without a cache)."""
    from rules import textnorm

    def fresh() -> tuple[np.ndarray, ...]:
        textnorm._bmp_tables.cache_clear()
        return textnorm._bmp_tables()

    try:
        built = (textnorm._build_fold(), *textnorm._build_nfkc())
        first = fresh()
        [entry] = sorted(cache.glob("textnorm-*.arrays"))
        stamp = entry.stat().st_mtime_ns
        second = fresh()
        assert entry.stat().st_mtime_ns == stamp  # read, not written again
        entry.write_bytes(b"damaged")
        third = fresh()
        for got in (first, second, third):
            assert [t.dtype for t in got] == [t.dtype for t in built]
            assert all(np.array_equal(a, b) for a, b in zip(got, built, strict=True))
    finally:
        textnorm._bmp_tables.cache_clear()  # the next user reads the usual cache again


def test_only_the_newest_entries_of_a_name_are_kept(cache: Path) -> None:
    for i in range(derived.KEEP + 2):
        if i < derived.KEEP:  # up to KEEP, every one is kept
            assert len(list(cache.glob("thing-*.arrays"))) == i
        derived.store("thing", derived.key(str(i)), {"a": np.arange(i + 1)})
    kept = sorted(cache.glob("thing-*.arrays"))
    assert len(kept) == derived.KEEP
    newest = derived.load("thing", derived.key(str(derived.KEEP + 1)))
    assert newest is not None and newest["a"].tolist() == list(range(derived.KEEP + 2))
    assert derived.load("thing", derived.key("0")) is None
