"""Live rooms: codes, presenter keys, rate limits, nicknames, the wall's figures, rooms kept apart."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from PIL import Image

from scratchnet import rooms
from scratchnet.rooms import RateLimited, RoomError, Rooms


class Clock:
    def __init__(self, t=1_000_000.0):
        self.t = t

    def __call__(self):
        return self.t


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(tmp_path, clock):
    rooms._last_add.clear()
    return Rooms(tmp_path / "rooms", clock=clock)


def probs(digit, confidence=0.9):
    p = np.full(10, (1 - confidence) / 9)
    p[digit] = confidence
    return p


def img(seed=0):
    return np.random.default_rng(seed).random((28, 28)).astype(np.float32)


def test_codes_are_six_unambiguous_characters_and_keys_are_secret(store):
    code, key = store.open(model="best")
    assert len(code) == 6 and set(code) <= set(rooms.ALPHABET) and not set(code) & set("01IO")
    assert len(key) >= 20 and key not in (store.root / code / "room.json").read_text()
    assert store.info(code)["model"] == "best"
    assert store.is_presenter(code, key) and not store.is_presenter(code, "guess") and not store.is_presenter(code, None)
    codes = {store.open()[0] for _ in range(30)}
    assert len(codes) == 30


@pytest.mark.parametrize("bad", ["../etc", "..", "ABC", "ABCDEFG", "ABCDE1", "abcd/e", "A" * 500, "", " ", 123,
                                 None, "K7QX2M\x00", "ＡＢＣＤＥＦ"])
def test_bad_codes_are_one_sentence_and_never_touch_a_path(store, bad, tmp_path):
    with pytest.raises(RoomError) as err:
        store.info(bad)
    message = str(err.value)
    assert message.endswith(".") and "\n" not in message and len(message) < 160
    assert not (tmp_path / "etc").exists()


def test_unknown_codes_are_one_sentence(store):
    with pytest.raises(RoomError, match="There is no room ABCDEF"):
        store.info("abcdef")  # normalised to upper case, valid, but nobody opened it
    with pytest.raises(RoomError, match="There is no room"):
        store.add("ABCDEF", "s1", img(), probs(3))


def test_drawings_answers_and_the_walls_figures(store, clock):
    code, key = store.open()
    a = store.add(code, "alice", img(1), probs(3, 0.95), nickname="Alice")
    clock.t += 2
    b = store.add(code, "bob", img(2), probs(7, 0.99), nickname="Bob")
    clock.t += 2
    c = store.add(code, "alice", img(3), probs(1, 0.6))
    store.answer(code, "alice", a.id, 3)  # right
    store.answer(code, "bob", b.id, 1)  # a 1 read as 7, confidently: a stumper
    view = store.view(code)
    assert (view.drawings, view.answered, view.correct) == (3, 2, 1) and view.accuracy == 0.5
    assert [x.id for x in view.latest] == [c.id, b.id, a.id]  # newest first
    assert view.latest[0].image.shape == (28, 28) and view.latest[0].answered is False
    assert view.confusion[1, 7] == 1 and view.confusion[3, 3] == 1 and view.confusion.sum() == 2
    assert view.hardest == (1, 0.0)
    assert [x.id for x in view.stumpers] == [b.id] and view.stumpers[0].confidence == pytest.approx(0.99)
    np.testing.assert_array_equal(store.image(code, a.id), np.rint(img(1) * 255).astype(np.uint8))
    X, y, ids = store.answered_arrays(code)
    assert X.shape == (2, 784) and sorted(y.tolist()) == [1, 3] and set(ids) == {a.id, b.id}
    store.answer(code, "bob", b.id, 7)  # changed their mind: the latest answer counts
    assert store.view(code).correct == 2


def test_only_the_drawer_answers_for_a_drawing(store):
    code, _ = store.open()
    a = store.add(code, "alice", img(), probs(3))
    with pytest.raises(RoomError, match="your own drawings"):
        store.answer(code, "mallory", a.id, 8)
    with pytest.raises(RoomError, match="not in this room"):
        store.answer(code, "alice", "../../etc/passwd", 8)
    with pytest.raises(RoomError, match="0 to 9"):
        store.answer(code, "alice", a.id, 10)


def test_one_drawing_a_second_per_session_and_500_per_room(store, clock, monkeypatch):
    code, _ = store.open()
    store.add(code, "s1", img(), probs(1))
    with pytest.raises(RateLimited, match="one drawing a second"):
        store.add(code, "s1", img(), probs(1))
    store.add(code, "s2", img(), probs(1))  # another session is not held up
    clock.t += 1.0
    store.add(code, "s1", img(), probs(1))
    monkeypatch.setattr(rooms, "MAX_PER_ROOM", 4)
    clock.t += 1.0
    store.add(code, "s3", img(), probs(1))
    clock.t += 1.0
    with pytest.raises(RateLimited, match="all the drawings it can take"):
        store.add(code, "s4", img(), probs(1))
    assert store.view(code).drawings == 4  # nothing half-stored by the refusals
    assert len(list((store.root / code).glob("*.png"))) == 4


@pytest.mark.parametrize("raw, shown", [
    ("<img src=x onerror=alert(1)>", "<img src=x onerror=alert(1)>"[:rooms.MAX_NICKNAME]),  # text, shown as text
    ("**bold**", "**bold**"),
    ("a\nb\r\tc\x00d", "a b c d"),
    ("x" * 100, "x" * rooms.MAX_NICKNAME),
    ("  spaced   out  ", "spaced out"),
    (None, ""),
])
def test_nicknames_are_one_short_line_of_plain_text(store, raw, shown):
    code, _ = store.open()
    store.add(code, "s", img(), probs(2), nickname=raw)
    assert store.view(code).latest[0].nickname == shown
    assert rooms.clean_nickname(raw) == shown


def test_the_presenters_controls_need_the_presenters_key(store, clock):
    code, key = store.open()
    store.add(code, "phone", img(), probs(4))
    other_code, other_key = store.open()  # someone else's room, with its own key
    for action in (lambda k: store.clear(code, k), lambda k: store.close(code, k),
                   lambda k: store.set_model(code, k, "mine")):
        for wrong in (None, "", other_key, key[:-1], key + "x"):
            with pytest.raises(RoomError, match="Only the presenter"):
                action(wrong)
    assert store.view(code).drawings == 1 and not store.view(code).closed
    clock.t += 5
    store.set_model(code, key, "personal-1")
    assert store.info(code)["model"] == "personal-1"
    store.clear(code, key)
    assert store.view(code).drawings == 0 and len(store.drawings(code)) == 1  # the wall, not the files
    clock.t += 1
    store.add(code, "phone", img(), probs(4))
    assert store.view(code).drawings == 1
    store.close(code, key)
    assert store.view(code).closed
    with pytest.raises(RoomError, match="has closed"):
        store.add(code, "phone2", img(), probs(4))


def test_two_rooms_never_see_each_others_drawings(store, clock):
    a, _ = store.open()
    b, _ = store.open()
    store.add(a, "s1", img(), probs(1))
    store.add(b, "s2", img(), probs(2))
    clock.t += 1
    store.add(b, "s2", img(), probs(2))
    assert store.view(a).drawings == 1 and store.view(b).drawings == 2
    assert {x.predicted for x in store.drawings(a)} == {1} and {x.predicted for x in store.drawings(b)} == {2}
    da = store.drawings(a)[0]
    assert store.image(b, da.id) is None
    with pytest.raises(RoomError):
        store.answer(b, "s1", da.id, 1)


def test_idle_rooms_close_and_keep_their_drawings(store, clock, monkeypatch):
    monkeypatch.setenv("SCRATCHNET_ROOM_IDLE_HOURS", "2")
    code, key = store.open()
    store.add(code, "s", img(), probs(5))
    clock.t += 3 * 3600
    busy, _ = store.open()  # opened later: not idle
    import os

    os.utime(store.root / code / "drawings.csv", (clock.t - 3 * 3600, clock.t - 3 * 3600))
    store.add(busy, "s", img(), probs(5))
    os.utime(store.root / busy / "drawings.csv", (clock.t, clock.t))
    assert store.close_idle() == [code]
    with pytest.raises(RoomError, match="has closed"):
        store.info(code)
    assert store.view(code).closed and store.view(code).drawings == 1
    store.info(busy)
    # a room also closes the first time someone looks at it after the idle hours
    late, _ = store.open()
    clock.t += 3 * 3600
    with pytest.raises(RoomError, match="has closed"):
        store.add(late, "s", img(), probs(5))


def test_concurrent_phones_lose_nothing(store, clock):
    code, _ = store.open()
    errors = []

    def phone(i):
        try:
            for j in range(5):
                clock.t += 0  # the fake clock does not move: each phone is limited by its own session
                try:
                    store.add(code, f"phone{i}-{j}", img(i), probs(i % 10))
                except RateLimited:
                    errors.append("limited")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=phone, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.view(code).drawings == 40 and len(list((store.root / code).glob("*.png"))) == 40


def test_join_link_carries_the_code_and_never_the_key(store, monkeypatch):
    code, key = store.open()
    monkeypatch.delenv("SCRATCHNET_PUBLIC_URL", raising=False)
    url = rooms.join_url("http://10.0.0.5:8501/", code)
    assert url == f"http://10.0.0.5:8501/Draw?room={code}" and key not in url
    monkeypatch.setenv("SCRATCHNET_PUBLIC_URL", "https://demo.example.org")
    assert rooms.join_url("http://localhost:8501", code) == f"https://demo.example.org/Draw?room={code}"
    assert key in rooms.presenter_url("http://x", code, key)
    png = rooms.qr_png(url)
    with Image.open(io.BytesIO(png)) as im:
        assert im.size[0] == im.size[1] and im.size[0] >= 250  # big enough to scan from a distance
