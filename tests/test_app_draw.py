"""The Draw page through Streamlit's AppTest: drawings injected into the canvas's widget state.

streamlit-drawable-canvas 0.13 is a components-v2 widget whose state is
``{"drawing": {"raw": fabric JSON, "data": PNG data URL}, "backgroundFit": ...}``; the page reads
``image_data``, which decodes ``drawing.data``. Setting that state is exactly what the browser
does when a stroke ends.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from scratchnet import feedback
from scratchnet.store import ModelStore
from tools.testkit import draw_digit, metric, rerun_until

ROOT = Path(__file__).resolve().parents[1]
PAGE = "pages/2_Draw.py"


def data_url(im: Image.Image) -> str:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def canvas_state(im: Image.Image) -> dict:
    return {"drawing": {"raw": {"objects": []}, "data": data_url(im)}, "backgroundFit": None}


def open_page() -> AppTest:
    # through the entry point, as in the app: page links resolve against app.py
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page(PAGE)
    at.run()
    assert not at.exception, at.exception
    return at


def infos(at: AppTest) -> str:
    return " ".join(i.value for i in at.info)


def draw_on(at: AppTest, im: Image.Image) -> None:
    gen = at.session_state["draw_canvas_gen"] if "draw_canvas_gen" in at.session_state else 0
    at.session_state[f"draw_canvas_{gen}"] = canvas_state(im)
    at.run()
    assert not at.exception, at.exception


@pytest.mark.parametrize("digit", ["1", "7"])
def test_a_clearly_drawn_digit_is_read(trained_model_store, digit):
    at = open_page()
    draw_on(at, draw_digit(digit))
    assert metric(at, "Prediction") == digit
    assert at.get("image"), "the 28x28 preview is missing"
    assert at.get("vega_lite_chart"), "the probability chart is missing"


def test_empty_canvas_shows_a_hint_not_a_prediction(trained_model_store):
    at = open_page()
    assert metric(at, "Prediction") is None
    assert "Draw a digit on the canvas" in infos(at)
    blank = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    draw_on(at, blank)
    assert metric(at, "Prediction") is None
    assert "Draw a digit on the canvas" in infos(at)
    draw_on(at, draw_digit("dot"))  # an accidental click is not a digit either
    assert metric(at, "Prediction") is None


def test_clear_button_gives_a_fresh_canvas(trained_model_store):
    at = open_page()
    draw_on(at, draw_digit("1"))
    assert metric(at, "Prediction") == "1"
    at.button(key="draw_clear").click().run()
    assert metric(at, "Prediction") is None
    assert "Draw a digit on the canvas" in infos(at)


def test_upload_a_picture_black_on_white(trained_model_store):
    at = open_page()
    # a "scan": dark ink on light paper, another size, as JPEG
    im = draw_digit("7", size=500).convert("L")
    im = Image.eval(im, lambda v: 255 - v * 200 // 255)
    buf = io.BytesIO()
    im.convert("RGB").save(buf, format="JPEG", quality=90)
    at.file_uploader(key="draw_upload").set_value(("seven.jpg", buf.getvalue(), "image/jpeg")).run()
    assert not at.exception, at.exception
    assert metric(at, "Prediction") == "7"
    assert not at.error


def test_upload_of_a_broken_file_is_a_clear_error(trained_model_store):
    at = open_page()
    at.file_uploader(key="draw_upload").set_value(("digit.png", b"this is not a picture", "image/png")).run()
    assert not at.exception, at.exception
    assert at.error and "not an image" in at.error[0].value
    assert metric(at, "Prediction") is None


def test_was_this_right_keeps_labelled_drawings(trained_model_store, env_dirs):
    at = open_page()
    assert metric(at, "Accuracy on your drawings") == "–"
    draw_on(at, draw_digit("1"))
    assert metric(at, "Prediction") == "1"
    at.button(key="draw_yes_canvas").click().run()
    assert not at.exception, at.exception
    assert any("Saved as a 1" in s.value for s in at.success)
    store = feedback.FeedbackStore(env_dirs.data_dir / "drawings")
    (d,) = store.list()
    assert (d.label, d.predicted, d.model) == (1, 1, "test-model")
    assert metric(at, "Accuracy on your drawings") == "100%"

    # the next drawing was misread (we say it): "No, it is a 4"
    at.button(key="draw_clear").click().run()
    draw_on(at, draw_digit("7"))
    no = [s for s in at.selectbox if str(s.key).startswith("draw_no_canvas_")][0]
    no.set_value(4).run()
    assert not at.exception, at.exception
    rows = store.list()
    assert [r.label for r in rows] == [1, 4] and rows[1].predicted == 7
    assert metric(at, "Accuracy on your drawings") == "50%"
    X, y = feedback.load_as_arrays(env_dirs.data_dir / "drawings")
    assert X.shape == (2, 784) and y.tolist() == [1, 4]
    # what was kept is what the network saw
    np.testing.assert_array_equal(X[1], feedback.to_uint8(feedback.to_input(np.asarray(draw_digit("7")))).ravel())
    dl = at.get("download_button")
    assert dl and not dl[0].proto.disabled


def test_model_choice_defaults_to_the_active_model(trained_model_store):
    net, meta = trained_model_store.load("test-model")
    trained_model_store.save(net, meta, name="other")  # newer, but not active
    at = open_page()
    box = at.selectbox(key="draw_model")
    assert box.value == "test-model"
    assert set(box.options) >= {"test-model (active)", "other"}
    box.set_value("other").run()
    assert not at.exception
    assert trained_model_store.active_name() == "test-model"  # a per-page choice only
    at.run()
    assert at.selectbox(key="draw_model").value == "other"  # kept across reruns
    trained_model_store.set_active("other")  # e.g. made active on the Train page
    at.run()
    box = at.selectbox(key="draw_model")
    assert box.value == "other" and "other (active)" in box.options
    trained_model_store.set_active("test-model")
    at.run()
    assert at.selectbox(key="draw_model").value == "test-model"  # follows a new active model



def has_model_box(at: AppTest) -> bool:
    return any(s.key == "draw_model" for s in at.selectbox)


def test_no_model_offers_one_click_training_through_the_queue(env_dirs, monkeypatch):
    from scratchnet.training import PRESETS
    from scratchnet.ui import draw
    from scratchnet.ui.worker import get_manager

    monkeypatch.setattr(draw, "QUICK_STEPS", 20)  # the page trains a few seconds; the test less
    at = open_page()
    assert metric(at, "Prediction") is None
    assert "no trained model yet" in infos(at)
    at.button(key="draw_quick_train").click().run()
    assert not at.exception, at.exception
    job = get_manager().get(at.session_state[draw.QUICK_JOB])
    assert job is not None and job.source == "quick-model" and job.preset == "fast"
    at = rerun_until(at, has_model_box)
    assert job.snapshot().status == "finished"
    store = ModelStore(env_dirs.models_dir)
    assert store.active_name() == "quick-draw"
    net, meta = store.load("quick-draw")
    # one metadata document, written by training.run like every other training
    assert meta["source"] == "quick-model" and meta["preset"] == "fast"
    assert meta["dataset"]["name"] == "sample" and meta["config"]["augment"] == PRESETS["fast"].augment
    assert meta["architecture"] == PRESETS["fast"].layers and meta["history"]
    assert meta["metrics"]["steps"] == 20 and meta["status"] == "finished"
    assert at.selectbox(key="draw_model").value == "quick-draw"  # ready to draw at once
    assert net.describe() in " ".join(c.value for c in at.caption)
    draw_on(at, draw_digit("1"))
    assert metric(at, "Prediction") is not None


def test_quick_model_waits_in_line_behind_another_training(env_dirs, monkeypatch):
    from scratchnet.datasets import load_sample
    from scratchnet.training import TrainConfig
    from scratchnet.ui import draw
    from scratchnet.ui.worker import TrainingJob, get_manager

    monkeypatch.setattr(draw, "QUICK_STEPS", 20)
    other = get_manager().submit(TrainingJob(TrainConfig(hidden=(8,), iterations=5_000_000, epochs=None,
                                                         batch_size=64), load_sample(), save=False))
    at = open_page()
    at.button(key="draw_quick_train").click().run()
    assert not at.exception, at.exception
    assert "number 1 in line" in infos(at)
    assert "Waiting for a free training slot" in at.get("progress")[0].proto.text
    assert not has_model_box(at) and not [b for b in at.button if b.key == "draw_quick_train"]
    other.request_stop()
    at = rerun_until(at, has_model_box)
    assert at.selectbox(key="draw_model").value == "quick-draw"


def test_a_quick_training_that_fails_says_why_and_offers_the_button_again(env_dirs, monkeypatch):
    from scratchnet.ui import draw
    from scratchnet.ui.worker import get_manager

    monkeypatch.setattr(draw, "QUICK_STEPS", 20)

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("scratchnet.ui.worker.run_training", boom)
    at = open_page()
    at.button(key="draw_quick_train").click().run()
    job = get_manager().get(at.session_state[draw.QUICK_JOB])
    assert job.done.wait(30)
    at.run()
    assert not at.exception, at.exception
    assert "quick training failed" in at.error[0].value and "disk on fire" in at.error[0].value
    assert [b for b in at.button if b.key == "draw_quick_train"]


def test_the_newest_reading_is_handed_to_the_inspect_page(trained_model_store):
    at = open_page()
    assert "last_drawing" not in at.session_state
    draw_on(at, draw_digit("1"))
    first = at.session_state["last_drawing"]
    assert first.shape == (28, 28) and first.dtype == np.float32
    assert 0.0 <= first.min() and first.max() <= 1.0
    np.testing.assert_array_equal(first, feedback.to_input(np.asarray(draw_digit("1"))))

    # an upload while the "1" is still on the canvas: the newer picture is the last drawing
    buf = io.BytesIO()
    draw_digit("7", size=400).convert("L").save(buf, format="PNG")
    at.file_uploader(key="draw_upload").set_value(("seven.png", buf.getvalue(), "image/png")).run()
    assert not at.exception, at.exception
    uploaded = feedback.to_input(Image.open(io.BytesIO(buf.getvalue())))
    np.testing.assert_array_equal(at.session_state["last_drawing"], uploaded)

    # a new stroke takes over again, and the unchanged upload does not win it back on reruns
    at.button(key="draw_clear").click().run()
    assert metric(at, "Prediction") == "7"  # the upload tab still shows its reading
    np.testing.assert_array_equal(at.session_state["last_drawing"], uploaded)
    draw_on(at, draw_digit("7"))
    drawn = feedback.to_input(np.asarray(draw_digit("7")))
    assert not np.array_equal(drawn, uploaded)
    np.testing.assert_array_equal(at.session_state["last_drawing"], drawn)
    at.run()
    np.testing.assert_array_equal(at.session_state["last_drawing"], drawn)


# --------------------------------------------------------------------------- teach it my handwriting

# A 1 written with a flag and a foot, in a few versions (the page centres and scales every
# drawing, so a shifted copy would be the very same input): the small test model reads them as 2s.
VARIANTS = [{}, {"width": 22}, {"top": 60, "flag_y": 105}, {"foot": (110, 190)}]


def flagged_one(flag_x=100, flag_y=90, foot=(100, 200), top=40, bottom=240, width=18) -> Image.Image:
    from PIL import ImageDraw

    im = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    d = ImageDraw.Draw(im)
    d.line([(flag_x, flag_y), (150, top), (150, bottom)], fill=(255, 255, 255, 255), width=width, joint="curve")
    d.line([(foot[0], bottom), (foot[1], bottom)], fill=(255, 255, 255, 255), width=width, joint="curve")
    return im


def answer_no(at: AppTest, digit: int) -> None:
    no = [s for s in at.selectbox if str(s.key).startswith("draw_no_canvas_")][0]
    no.set_value(digit).run()
    assert not at.exception, at.exception


def captions(at: AppTest) -> str:
    return " ".join(c.value for c in at.caption)


def buttons(at: AppTest) -> set:
    return {b.key for b in at.button}


def label_three(at: AppTest) -> None:
    """One drawing it reads right ("Yes"), then two flagged 1s it misreads ("No, it is a 1")."""
    draw_on(at, draw_digit("1"))
    at.button(key="draw_yes_canvas").click().run()
    assert "Label 2 more drawings" in captions(at)
    assert "draw_teach" not in buttons(at)
    for variant in VARIANTS[:2]:
        at.button(key="draw_clear").click().run()
        draw_on(at, flagged_one(**variant))
        assert metric(at, "Prediction") == "2"
        answer_no(at, 1)
    assert len(at.session_state["draw_my_drawings"]) == 3


def teach(at: AppTest, key: str = "draw_teach_canvas") -> AppTest:
    at.button(key=key).click().run()
    assert not at.exception, at.exception
    return rerun_until(at, taught)


def taught(at: AppTest) -> bool:
    """Has the page taken in the outcome of this session's latest teaching?"""
    ss = at.session_state
    return "draw_teach_adopted" in ss and ss["draw_teach_adopted"] == ss["draw_teach_job"]


def test_teach_it_my_handwriting_then_compare_and_share(trained_model_store):
    from scratchnet import personal
    from scratchnet.ui import draw
    from scratchnet.ui.worker import get_manager

    at = open_page()
    for i, variant in enumerate(VARIANTS[:3]):
        if i:
            at.button(key="draw_clear").click().run()
        draw_on(at, flagged_one(**variant))
        assert metric(at, "Prediction") == "2"
        answer_no(at, 1)
        if i == 0:  # one correction is not enough yet
            assert "Label 2 more drawings" in captions(at) and "draw_teach_canvas" not in buttons(at)
    # right after the third "No, it is a …": the offer, beside the answer and in its section
    assert {"draw_teach_canvas", "draw_teach"} <= buttons(at)
    at.button(key="draw_teach_canvas").click().run()
    assert not at.exception, at.exception
    job = get_manager().get(at.session_state[draw.TEACH_JOB])
    assert job is not None and job.kind == "fine-tuning" and job.base_name == "test-model"
    assert job.y.tolist() == [1, 1, 1]
    at = rerun_until(at, taught)
    p = job.personal
    name = personal.personal_name("test-model")
    assert job.snapshot().status == "finished" and not p.refused
    # saved, this session's model, not everyone's
    assert name in trained_model_store.names() and trained_model_store.active_name() == "test-model"
    box = at.selectbox(key="draw_model")
    assert box.value == name
    assert f"{name} (yours)" in box.options and "test-model (active)" in box.options
    # the figures: drawings before/after (cross-checked), validation before/after
    assert metric(at, "Your drawings") == f"{p.drawings_after:.0%}"
    assert metric(at, "MNIST validation") == f"{p.val_after:.1%}"
    assert f"{p.drawings_before:.0%} → {p.drawings_after:.0%} of 3 (cross-checked)" in captions(at)
    assert f"{p.val_before:.1%} → {p.val_after:.1%}" in captions(at)
    assert any(p.message in s.value for s in at.success)
    assert 2 in p.fixed  # the flagged 1 still on the canvas, read right by a model tuned without it
    shown = [m.value for m in at.markdown]
    assert any(v.startswith(f"**Now read right** ({len(p.fixed)}") for v in shown)
    thumbs = [c for im in at.get("image") for c in im.captions]
    assert "1 (was 2)" in thumbs
    # the new answer: the drawing still on the canvas is now read as a 1
    assert metric(at, "Prediction") == "1"
    # compare with the base, then back
    at.selectbox(key="draw_model").set_value("test-model").run()
    assert metric(at, "Prediction") == "2"
    at.selectbox(key="draw_model").set_value(name).run()
    assert metric(at, "Prediction") == "1"
    assert "learned a handwriting from 3 drawings on top of test-model" in captions(at)
    # a new active model elsewhere does not take this session's personal model away
    trained_model_store.set_active("test-model")
    at.run()
    assert at.selectbox(key="draw_model").value == name
    # everyone's, only when asked
    at.button(key="draw_make_everyones").click().run()
    assert not at.exception, at.exception
    assert trained_model_store.active_name() == name
    assert "everyone's model now" in captions(at) and "draw_make_everyones" not in buttons(at)
    assert f"{name} (yours, active)" in at.selectbox(key="draw_model").options
    # nothing new to learn from: no button until another drawing is labelled
    assert "draw_teach" not in buttons(at) and "learned from all your drawings" in captions(at)


def test_teaching_again_starts_from_the_base_with_every_drawing(trained_model_store, monkeypatch):
    from scratchnet import personal
    from scratchnet.ui import draw
    from scratchnet.ui.worker import get_manager

    monkeypatch.setattr(personal, "STEPS", 20)
    at = open_page()
    label_three(at)
    at = teach(at)
    first = at.session_state[draw.TEACH_RESULT]["model_name"]
    at.button(key="draw_clear").click().run()
    draw_on(at, flagged_one(**VARIANTS[3]))
    at.button(key="draw_yes_canvas").click().run()  # a fourth drawing, read right by the personal model
    at = teach(at, key="draw_teach")
    job = get_manager().get(at.session_state[draw.TEACH_JOB])
    assert job.base_name == "test-model" and len(job.y) == 4  # not the personal model on top
    second = at.session_state[draw.TEACH_RESULT]["model_name"]
    assert second != first and {first, second} <= set(trained_model_store.names())
    assert at.selectbox(key="draw_model").value == second


def test_a_refused_teaching_says_why_and_changes_nothing(trained_model_store, monkeypatch):
    from scratchnet import personal

    monkeypatch.setattr(personal, "LR", 0.5)  # tuning this hard costs everybody else: refused
    at = open_page()
    label_three(at)
    at = teach(at, key="draw_teach")
    warnings = " ".join(w.value for w in at.warning)
    assert "Fine-tuning was refused" in warnings and "base model was kept" in warnings
    assert trained_model_store.names() == ["test-model"]
    assert at.selectbox(key="draw_model").value == "test-model"
    assert metric(at, "Your drawings") is None and "draw_make_everyones" not in buttons(at)


def test_drawings_it_now_misreads_are_shown_too(trained_model_store, monkeypatch):
    """The "other way" gallery: a drawing the base read right and the personal model reads wrong."""
    from scratchnet import personal

    real = personal.finetune

    def with_a_broken_one(*args, **kwargs):
        outcome = real(*args, **kwargs)
        outcome.predicted_after[0] = 8  # the first drawing, a 1 the base read right
        return outcome

    monkeypatch.setattr(personal, "finetune", with_a_broken_one)
    monkeypatch.setattr(personal, "STEPS", 20)
    at = open_page()
    label_three(at)
    at = teach(at)
    assert any(m.value.startswith("**Now read wrong** (1") for m in at.markdown)
    assert "1 (now 8)" in [c for im in at.get("image") for c in im.captions]


@pytest.mark.parametrize("start, stop", [("draw_teach", "draw_teach_stop"),
                                         ("draw_teach_canvas", "draw_teach_stop_canvas")])
def test_teaching_can_be_stopped_and_the_model_stays(trained_model_store, monkeypatch, start, stop):
    from scratchnet import personal
    from scratchnet.ui import draw
    from scratchnet.ui.worker import get_manager

    monkeypatch.setattr(personal, "STEPS", personal.MAX_STEPS)
    at = open_page()
    label_three(at)
    at.button(key=start).click().run()
    job = get_manager().get(at.session_state[draw.TEACH_JOB])
    at = rerun_until(at, lambda a: job.snapshot().step > 0)
    # the progress shows where the button was pressed: beside the answer, or in the section
    assert len(at.get("progress")) == 1 and {b for b in buttons(at) if "stop" in b} == {stop}
    beside = "the progress is beside your drawing" in captions(at)
    assert beside == (start == "draw_teach_canvas")
    assert "draw_teach" not in buttons(at) and "draw_teach_canvas" not in buttons(at)
    at.button(key=stop).click().run()
    at = rerun_until(at, taught)
    assert job.snapshot().status == "stopped"
    assert "was stopped" in " ".join(w.value for w in at.warning)
    assert trained_model_store.names() == ["test-model"] and at.selectbox(key="draw_model").value == "test-model"
    assert "draw_teach" in buttons(at)  # it may be taught again
