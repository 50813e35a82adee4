"""The Inspect page in a real browser: the confusion matrix is a Vega-Lite chart whose cells are
clickable, which AppTest cannot exercise."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser


def test_clicking_a_confusion_cell_shows_its_digits(streamlit_server, page):
    page.goto(f"{streamlit_server}/Inspect")
    page.get_by_text("Accuracy", exact=True).first.wait_for(timeout=60_000)
    chart = page.get_by_test_id("stVegaLiteChart").first
    cells = chart.locator("path[role='graphics-symbol']")
    cells.first.wait_for()
    assert cells.count() == 100
    # pick an off-diagonal cell holding mistakes (from the labels Vega writes on each mark),
    # other than the one shown by default, so the click has to change what is shown
    target = None
    for i in range(100):
        label = cells.nth(i).get_attribute("aria-label") or ""
        m = re.match(r"predicted: (\d); true digit: (\d);.*digits: (\d+);", label)
        if m and m[1] != m[2] and int(m[3]) > 0:
            t, p, n = int(m[2]), int(m[1]), int(m[3])
            if page.get_by_text(f"{n} digits labelled {t} were read as {p}").count() == 0:
                target = (t, p, n, i)
                break
    assert target is not None, "the test model makes no mistakes?"
    t, p, n, i = target
    cells.nth(i).click()
    expected = f"{n} digits labelled {t} were read as {p}"
    page.get_by_text(expected).first.wait_for(timeout=20_000)
    assert page.get_by_test_id("stException").count() == 0


@pytest.fixture(scope="module")
def conv_server(tmp_path_factory):
    """The app on its own directories, whose only (active) model is a small conv net."""
    from scratchnet.datasets import load_sample
    from scratchnet.store import ModelStore
    from scratchnet.training import TrainConfig, run
    from tools.devserver import running_app

    base = tmp_path_factory.mktemp("conv-server")
    data_dir, models_dir = base / "data", base / "models"
    data_dir.mkdir()
    result = run(TrainConfig(layers="conv4-5,maxpool2,dense16", iterations=30, batch_size=64, seed=0),
                 load_sample())
    store = ModelStore(models_dir)
    store.save(result.net, result.metadata, name="conv-model")
    store.set_active("conv-model")
    with running_app(data_dir, models_dir, base / "server.log") as (url, _proc):
        yield url, result.net


def test_a_conv_model_shows_feature_maps_and_the_convolution(conv_server, page):
    from scratchnet import inspect as ins
    from scratchnet.datasets import load_sample

    url, net = conv_server
    page.goto(f"{url}/Inspect")
    page.get_by_text("Accuracy", exact=True).first.wait_for(timeout=60_000)
    page.get_by_text("28x28 → conv4-5 → maxpool2 → dense16 → 10").first.wait_for()

    page.get_by_role("tab", name=re.compile("Weights")).click()
    page.get_by_text("The 4 filters of conv4-5, row by row").wait_for()

    page.get_by_role("tab", name=re.compile("Activations")).click()
    panel = page.get_by_role("tabpanel", name=re.compile("Activations"))
    panel.get_by_text("Feature maps", exact=True).wait_for()
    for name in ("conv4-5 + relu: 4 channels of 28×28", "maxpool2: 4 channels of 14×14"):
        image = panel.locator("[data-testid='stImage']", has_text=name)
        image.wait_for()
        img = image.locator("img").first
        img.wait_for()
        # the picture really arrived: 4 maps side by side, about 84 px each
        assert page.evaluate("(el) => el.complete && el.naturalWidth", img.element_handle()) > 4 * 84

    page.get_by_role("tab", name=re.compile("How it works")).click()
    panel = page.get_by_role("tabpanel", name=re.compile("How it works"))
    panel.get_by_text("2 · One pixel of the first convolution, as a sum").wait_for()
    panel.get_by_text("3 · The same, as one matrix product (im2col)").wait_for()
    panel.get_by_text("cols has shape (784, 25): one row per output pixel").wait_for()
    x = load_sample().X_val[0]
    ex = ins.conv_example(net, x)
    panel.get_by_text(f"Filter {ex.filter} at output pixel ({ex.pos[0]}, {ex.pos[1]})").wait_for()
    # KaTeX rendered the sum with the model's numbers (its annotation keeps the TeX source)
    katex = panel.locator(".katex")
    katex.first.wait_for()
    sources = panel.locator("annotation").all_text_contents()
    assert any(f"{ex.bias:.4f} + {float(ex.products.sum()):.4f} = {ex.z:.4f}" in s for s in sources), sources
    assert page.get_by_test_id("stException").count() == 0
