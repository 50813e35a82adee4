"""The home page through AppTest: explains itself, reports data and model state, links the pages."""

import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from scratchnet.datasets import MNIST_FILES

ROOT = Path(__file__).resolve().parents[1]


def run_home() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30).run()
    assert not at.exception, at.exception
    return at


def page_links(at) -> list[str]:
    """Links in the page body (the sidebar's navigation is checked separately)."""
    return [p.proto.page for p in at.main.get("page_link")]


def test_sidebar_navigation_names_every_page(env_dirs):
    at = run_home()
    links = [(p.proto.label, p.proto.page) for p in at.sidebar.get("page_link")]
    assert [label for label, _ in links] == ["Home", "Train", "Draw", "Inspect", "Live"]
    assert [page for _, page in links][1:] == ["Train", "Draw", "Inspect", "Live"]


def test_home_without_model_or_mnist(env_dirs):
    at = run_home()
    assert at.title[0].value.endswith("scratchnet")
    assert "from scratch in NumPy" in at.markdown[0].value
    assert "bundled 5,000-digit MNIST sample" in at.info[0].value
    assert "none trained yet" in at.warning[0].value
    links = page_links(at)
    assert links == ["Train", "Draw", "Inspect", "Live"]


def test_home_reports_the_active_model_and_mnist(trained_model_store, env_dirs):
    mnist = env_dirs.data_dir / "mnist"
    mnist.mkdir()
    for stem in MNIST_FILES:
        (mnist / f"{stem}.gz").write_bytes(b"")
    at = run_home()
    assert "full MNIST is downloaded" in at.success[0].value
    model = at.success[1].value
    assert "test-model" in model and "784-32-10" in model and "validation accuracy" in model
    acc = trained_model_store.load_active()[1]["metrics"]["val_accuracy"]
    assert f"{acc:.1%}" in model


def test_home_describes_a_conv_model(env_dirs):
    from scratchnet.datasets import load_sample
    from scratchnet.store import ModelStore
    from scratchnet.training import TrainConfig
    from scratchnet.ui.worker import TrainingJob

    config = TrainConfig(layers="conv4-5,maxpool2,dense8", iterations=5, epochs=None, batch_size=32)
    snap = TrainingJob(config, load_sample(), store=ModelStore(env_dirs.models_dir), name="tiny-conv",
                       idle_timeout=None).run()
    assert snap.status == "finished"
    at = run_home()
    model = at.success[-1].value
    assert "tiny-conv" in model and "28x28 → conv4-5 → maxpool2 → dense8 → 10" in model, model


def test_home_survives_a_corrupt_model_file(env_dirs):
    (env_dirs.models_dir / "broken.npz").write_bytes(b"not a zip at all")
    at = run_home()
    assert "none trained yet" in at.warning[0].value
    assert any("broken.npz" in c.value for c in at.caption)


def test_sidebar_follows_a_training_on_other_pages(env_dirs):
    from scratchnet.ui.common import JOB_KEY
    from scratchnet.ui.worker import get_manager

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.switch_page("pages/1_Train.py")
    at.run()
    at.selectbox(key="tr_preset").set_value("notebook").run()
    at.number_input(key="tr_iterations").set_value(1_000_000).run()
    at.button(key="tr_start").click().run()
    at.switch_page("app.py")
    at.run()
    assert not at.exception, at.exception
    job = get_manager().get(at.session_state[JOB_KEY])
    assert "Training in progress" in "\n".join(c.value for c in at.sidebar.caption), job.snapshot()
    # A run stopped before its first step has nothing to save; let it take a step first
    # (on a loaded CI machine the thread may not have started yet).
    deadline = time.monotonic() + 30
    while job.snapshot().step == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    job.request_stop()
    assert job.done.wait(10)
    at.run()
    caption = "\n".join(c.value for c in at.sidebar.caption)
    assert "Training stopped: model" in caption and "made active" in caption
    assert job.snapshot().result["model_name"] in at.success[-1].value  # home shows the new model
