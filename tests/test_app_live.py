"""Live rooms through Streamlit's AppTest: the presenter's wall (pages/4_Live.py) and the Draw
page's room mode (pages/2_Draw.py?room=CODE).

``run_every`` fragments do not tick in AppTest; they run inline with every ``at.run()``, which is
how the wall is refreshed here. Drawings reach the wall through the core (``Rooms.add``, as a
phone's page does) or through the Draw page itself.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from scratchnet import rooms as rooms_mod
from scratchnet.rooms import Rooms
from tests.test_app_draw import canvas_state
from tools.testkit import draw_digit, metric

ROOT = Path(__file__).resolve().parents[1]
LIVE, DRAW = "pages/4_Live.py", "pages/2_Draw.py"
NASTY = "<img src=x onerror=alert(1)>"


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    rooms_mod._last_add.clear()
    yield
    rooms_mod._last_add.clear()


def page(path: str, **query) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    for k, v in query.items():
        at.query_params[k] = v
    at.switch_page(path)
    at.run()
    assert not at.exception, at.exception
    return at


def run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    return at


def open_room(**query) -> tuple[AppTest, str, str]:
    at = page(LIVE, **query)
    at.button(key="live_open").click()
    run(at)
    return at, at.session_state["live_code"], at.session_state["live_key"]


def probs(digit: int, confidence: float = 0.9) -> np.ndarray:
    p = np.full(10, (1 - confidence) / 9)
    p[digit] = confidence
    return p


def image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((28, 28)).astype(np.float32)


def texts(at: AppTest) -> list[str]:
    return [t.value for t in at.text]


def markdown_and_alerts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [a.value for kind in (at.info, at.warning, at.error, at.success) for a in kind]
    return "\n".join(parts)


def buttons(at: AppTest) -> set:
    return {b.key for b in at.button}


# --------------------------------------------------------------------------- the wall


def test_open_a_room_then_drawings_added_through_the_core_appear(trained_model_store, monkeypatch):
    from scratchnet.ui import live

    encoded = []
    real_qr = live.qr_png
    monkeypatch.setattr(live, "qr_png", lambda text, scale=10: encoded.append(text) or real_qr(text, scale))
    live._qr.clear()
    at, code, key = open_room()
    assert len(code) == 6 and len(key) >= 20
    assert Rooms().info(code)["model"] == "test-model"  # the active model by default
    join = f"http://localhost:8501/Draw?room={code}"
    assert f"[{join}]({join})" in markdown_and_alerts(at)  # a clickable link
    assert encoded == [join]  # the QR code holds the join link, and only it
    assert key not in markdown_and_alerts(at) and key not in join
    assert [c.value for c in at.code] == [f"http://localhost:8501/Live?room={code}&key={key}"]  # shown once
    assert (metric(at, "Drawings"), metric(at, "Room accuracy")) == ("0", "–")

    core = Rooms()
    a = core.add(code, "phone-a", image(1), probs(3, 0.95), nickname="Ann")
    b = core.add(code, "phone-b", image(2), probs(7, 0.99), nickname="Bob")
    core.answer(code, "phone-a", a.id, 3)
    core.answer(code, "phone-b", b.id, 1)  # a 1 read as a 7, confidently: a stumper
    run(at)
    assert metric(at, "Drawings") == "2" and metric(at, "Room accuracy") == "50%"
    assert metric(at, "Answered") == "2" and metric(at, "Hardest digit") == "1"
    shown = texts(at)
    assert "3 ✓" in shown and "7 ✗ (1)" in shown and "Ann" in shown and "Bob" in shown
    assert "a 1 read as 7 (99%)" in shown  # the stumper
    assert at.get("vega_lite_chart"), "the confusion matrix is missing"
    assert len(at.get("image")) >= 1 + 2 + 1  # QR, the two drawings, the stumper

    # the presenter link is hidden for good once saved
    at.button(key="live_hide_link").click()
    run(at)
    assert not at.code


def test_nicknames_are_plain_text_on_the_wall(trained_model_store):
    at, code, _ = open_room()
    core = Rooms()
    core.add(code, "p1", image(1), probs(2), nickname=NASTY)
    core.add(code, "p2", image(2), probs(5), nickname="**bold**")
    run(at)
    shown = texts(at)
    assert NASTY[: rooms_mod.MAX_NICKNAME] in shown and "**bold**" in shown  # st.text: shown as typed
    rendered = markdown_and_alerts(at) + "".join(h.value for h in at.get("html"))
    assert "<img" not in rendered and "bold" not in rendered  # never through Markdown or HTML


def test_controls_clear_close_and_big_screen(trained_model_store):
    at, code, key = open_room()
    core = Rooms()
    core.add(code, "p1", image(), probs(4))
    run(at)
    assert metric(at, "Drawings") == "1"
    at.button(key="live_clear").click()
    run(at)
    assert metric(at, "Drawings") == "0" and "The wall is clear" in markdown_and_alerts(at)
    assert core.view(code).drawings == 0 and len(core.drawings(code)) == 1  # kept for teaching

    at.toggle(key="live_big").set_value(True)
    run(at)
    assert "live_clear" not in buttons(at) and "live_close" not in buttons(at)  # nothing to mis-click
    assert at.get("image"), "the QR code must stay visible on the big screen"
    assert code in "".join(m.value for m in at.markdown) and metric(at, "Drawings") == "0"
    at.toggle(key="live_big").set_value(False)
    run(at)

    at.button(key="live_close").click()
    run(at)
    assert core.view(code).closed and "live_code" not in at.session_state
    assert "live_open" in buttons(at) and f"Room {code} is closed" in markdown_and_alerts(at)


def test_without_the_key_the_live_page_never_controls_another_room(trained_model_store):
    owner, code, key = open_room()
    Rooms().add(code, "p1", image(), probs(4))

    # a visitor who types the room into the Live page's address: one sentence, their own lobby
    for query in ({"room": code}, {"room": code, "key": "guess"}, {"room": code, "key": key[:-1]},
                  {"room": "../../etc", "key": key}):
        at = page(LIVE, **query)
        assert "live_clear" not in buttons(at) and metric(at, "Drawings") is None, query
        assert "live_open" in buttons(at)
        said = markdown_and_alerts(at).replace("\\", "")
        assert "Only the presenter" in said or "is not a room code" in said, query

    # state forged on the server side is no better: the key is checked on every run
    at = page(LIVE)
    at.session_state["live_code"] = code
    at.session_state["live_key"] = "not-the-key"
    run(at)
    assert "live_clear" not in buttons(at) and "live_code" not in at.session_state
    # a visitor with a room of their own holds a key that fits only that room
    other, other_code, other_key = open_room()
    other.session_state["live_code"] = code
    run(other)
    assert "live_clear" not in buttons(other)
    with pytest.raises(rooms_mod.RoomError):
        Rooms().clear(code, other_key)

    run(owner)
    assert metric(owner, "Drawings") == "1" and not Rooms().view(code).closed  # untouched


def test_the_presenter_link_brings_the_wall_back_and_leaves_the_address_bar(trained_model_store):
    _, code, key = open_room()
    at = page(LIVE, room=code, key=key)  # a reload: a new session
    assert at.session_state["live_code"] == code and "live_clear" in buttons(at)
    assert "room" not in at.query_params and "key" not in at.query_params
    assert not at.code  # the link is not shown again
    assert "back at the wall" in markdown_and_alerts(at)


def test_two_rooms_are_kept_apart(trained_model_store):
    a, code_a, _ = open_room()
    b, code_b, _ = open_room()
    assert code_a != code_b
    phone = page(DRAW, room=code_a)
    phone.session_state["draw_canvas_0"] = canvas_state(draw_digit("7"))
    run(phone)
    [yes] = [x for x in phone.button if str(x.key).startswith("room_yes_")]
    yes.click()
    run(phone)
    run(a), run(b)
    assert metric(a, "Drawings") == "1" and metric(b, "Drawings") == "0"
    assert not [t for t in texts(b) if "✓" in t]


def test_teach_it_the_rooms_handwriting(trained_model_store, monkeypatch):
    from scratchnet.ui import live

    at, code, key = open_room()
    core = Rooms()
    for i, digit in enumerate([1, 7, 1, 7]):
        x = core.add(code, f"p{i}", np.asarray(draw_digit(str(digit)).convert("L").resize((28, 28)), np.uint8),
                     probs(digit))
        core.answer(code, f"p{i}", x.id, digit)
    run(at)
    assert not at.button(key="live_teach").disabled
    at.button(key="live_teach").click()
    run(at)
    from scratchnet.ui.worker import FinetuneJob, get_manager

    job = get_manager().get(at.session_state[live.TEACH])
    assert isinstance(job, FinetuneJob)  # in the training queue like any training
    assert job.done.wait(90), "teaching did not end"
    run(at)
    snap = job.poll()
    assert snap.status == "finished", (snap.error, snap.message)
    assert metric(at, "Held-out room drawings: before → after") is not None
    assert job.personal.metadata["personal"]["drawings"]["room"] == code
    if job.personal.refused:
        pytest.skip("the sample model's fine-tuning was refused (validation fell); nothing to switch to")
    name = snap.result["model_name"]
    assert name and name.startswith("test-model-personal-")
    assert Rooms().info(code)["model"] == "test-model"  # only when the presenter says so
    assert trained_model_store.active_name() == "test-model"  # and never everyone's model
    at.button(key="live_use_taught").click()
    run(at)
    assert Rooms().info(code)["model"] == name
    assert f"draws against {name}" in markdown_and_alerts(at)


def test_teaching_needs_answered_drawings_and_the_key(trained_model_store):
    from scratchnet.ui import live

    at, code, key = open_room()
    assert at.button(key="live_teach").disabled  # nothing answered yet
    with pytest.raises(rooms_mod.RoomError, match="Only the presenter"):
        live.start_teaching(code, "wrong")
    with pytest.raises(rooms_mod.RoomError, match="at least"):
        live.start_teaching(code, key)


# --------------------------------------------------------------------------- the audience


def draw(at: AppTest, digit: str) -> AppTest:
    gen = at.session_state["draw_canvas_gen"] if "draw_canvas_gen" in at.session_state else 0
    at.session_state[f"draw_canvas_{gen}"] = canvas_state(draw_digit(digit))
    return run(at)


def yes_button(at: AppTest):
    return next(b for b in at.button if str(b.key).startswith("room_yes_"))


def test_the_audience_draws_answers_and_the_wall_sees_it(trained_model_store, env_dirs):
    wall, code, _ = open_room()
    phone = page(DRAW, room=code)
    assert f"Room {code}" in "".join(m.value for m in phone.markdown)
    assert "draw_model" not in {s.key for s in phone.selectbox}  # the room's model, not a picker
    assert not phone.title  # a phone's header is the room, not the ordinary page
    phone.text_input(key="room_nickname").set_value(NASTY)
    run(phone)

    draw(phone, "7")
    assert metric(phone, "Prediction") == "7"
    assert "Going up on the wall…" in [c.value for c in phone.caption]  # waits for the drawing to settle
    assert Rooms().view(code).drawings == 0
    yes_button(phone).click()
    run(phone)
    assert any("Your 7 is on the wall with a ✓" in s.value for s in phone.success)
    assert metric(phone, "Prediction") is None  # a fresh canvas for the next one
    view = Rooms().view(code)
    assert (view.drawings, view.answered, view.correct) == (1, 1, 1)
    assert view.latest[0].nickname == NASTY[: rooms_mod.MAX_NICKNAME]
    from scratchnet.feedback import to_uint8

    np.testing.assert_array_equal(view.latest[0].image, to_uint8(phone.session_state["last_drawing"]))  # what it read

    time.sleep(1.05)  # one drawing a second
    draw(phone, "1")
    assert metric(phone, "Prediction") == "1"
    phone.session_state["room_pending"]["seen"] -= 5  # it settled
    run(phone)
    assert Rooms().view(code).drawings == 2 and Rooms().view(code).answered == 1  # up without an answer
    run(wall)
    assert metric(wall, "Drawings") == "2" and "1 ?" in texts(wall) and "7 ✓" in texts(wall)
    assert NASTY[: rooms_mod.MAX_NICKNAME] in texts(wall)


def test_no_it_is_a(trained_model_store):
    _, code, _ = open_room()
    phone = page(DRAW, room=code)
    draw(phone, "7")
    [pills] = phone.pills
    assert 7 not in pills.options and len(pills.options) == 9
    pills.set_value(4)
    run(phone)
    assert any("Your 4 is on the wall with a ✗" in s.value for s in phone.info)
    view = Rooms().view(code)
    assert view.confusion[4, 7] == 1 and view.accuracy == 0


def test_rate_limit_is_polite_and_nothing_is_lost(trained_model_store, monkeypatch):
    from scratchnet.ui import room_draw

    monkeypatch.setattr(room_draw, "SETTLE", 0.0)  # every reading goes up at once
    _, code, _ = open_room()
    phone = page(DRAW, room=code)
    draw(phone, "7")
    assert Rooms().view(code).drawings == 1
    draw(phone, "1")  # within the second
    said = " ".join(w.value for w in phone.warning).replace("\\", "")
    assert "one drawing a second is plenty" in said
    assert Rooms().view(code).drawings == 1
    time.sleep(1.05)
    run(phone)  # the next tick puts it up
    assert Rooms().view(code).drawings == 2
    assert not phone.warning

    monkeypatch.setattr(rooms_mod, "MAX_PER_ROOM", 2)
    time.sleep(1.05)
    draw(phone, "7")
    said = " ".join(w.value for w in phone.warning).replace("\\", "")
    assert "all the drawings it can take" in said and Rooms().view(code).drawings == 2


@pytest.mark.parametrize("room, sentence", [
    ("../etc", "is not a room code"),
    ("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "is not a room code"),
    ("[x](http://e.vil)", "is not a room code"),
    ("ABCDEF", "There is no room ABCDEF"),
])
def test_a_bad_or_unknown_code_gets_the_ordinary_page_and_one_sentence(trained_model_store, room, sentence):
    at = page(DRAW, room=room)
    [info] = [i for i in at.info if "room" in i.value.lower()]
    assert sentence in info.value.replace("\\", "")
    assert "](" not in info.value.replace("\\]\\(", "")  # a link in a code stays text
    assert at.title and "Draw a digit" in at.title[0].value  # the ordinary page follows
    assert "draw_model" in {s.key for s in at.selectbox}


def test_a_closed_room_sends_its_phones_to_the_ordinary_page(trained_model_store):
    _, code, key = open_room()
    phone = page(DRAW, room=code)
    draw(phone, "7")
    Rooms().close(code, key)
    yes_button(phone).click()
    run(phone)
    assert any(f"Room {code} has closed" in i.value.replace("\\", "") for i in phone.info)
    assert phone.title and "Draw a digit" in phone.title[0].value


def test_the_phone_draws_against_the_rooms_model(trained_model_store):
    net, meta = trained_model_store.load("test-model")
    trained_model_store.save(net, meta, name="room-model")
    at = page(LIVE)
    at.selectbox(key="live_model").set_value("room-model")
    at.button(key="live_open").click()
    run(at)
    code = at.session_state["live_code"]
    assert Rooms().info(code)["model"] == "room-model"
    phone = page(DRAW, room=code)
    draw(phone, "7")
    yes_button(phone).click()
    run(phone)
    assert Rooms().view(code).drawings == 1
    # a room whose model has gone falls back to the active one
    trained_model_store.delete("room-model")
    time.sleep(1.05)
    draw(phone, "1")
    assert metric(phone, "Prediction") == "1"


def test_the_presenters_key_means_nothing_to_the_draw_page(trained_model_store):
    _, code, key = open_room()
    phone = page(DRAW, room=code, key=key)
    assert not {k for k in buttons(phone) if str(k).startswith("live_")}
    assert metric(phone, "Drawings") is None


def test_the_join_link_uses_the_public_address_when_set(trained_model_store, monkeypatch):
    monkeypatch.setenv("SCRATCHNET_PUBLIC_URL", "https://digits.example.org/")
    at, code, key = open_room()
    assert f"(https://digits.example.org/Draw?room={code})" in markdown_and_alerts(at)
    assert at.code[0].value == f"https://digits.example.org/Live?room={code}&key={key}"


def test_without_a_model_the_lobby_says_so(env_dirs):
    at = page(LIVE)
    assert at.button(key="live_open").disabled
    assert "no trained model yet" in markdown_and_alerts(at)


def test_teaching_waits_in_line_behind_a_training(trained_model_store):
    from scratchnet.datasets import load_sample
    from scratchnet.training import TrainConfig
    from scratchnet.ui import live
    from scratchnet.ui.worker import TrainingJob, get_manager

    other = get_manager().submit(TrainingJob(TrainConfig(hidden=(8,), iterations=5_000_000, epochs=None,
                                                         batch_size=64), load_sample(), save=False))
    at, code, key = open_room()
    core = Rooms()
    for i, digit in enumerate([1, 7, 1]):
        x = core.add(code, f"p{i}", image(i), probs(digit))
        core.answer(code, f"p{i}", x.id, digit)
    run(at)
    at.button(key="live_teach").click()
    run(at)
    assert "number 1 in line" in markdown_and_alerts(at)
    at.button(key="live_teach_stop").click()
    run(at)
    job = get_manager().get(at.session_state[live.TEACH])
    assert job.done.wait(10) and job.poll().status == "stopped"
    other.request_stop()
