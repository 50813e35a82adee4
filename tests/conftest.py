"""Shared fixtures: isolated data/model directories, a small trained model, a live app, a browser.

Nothing here touches the network or ``/work/shared``: the model is trained on the bundled sample,
and the Streamlit server and Chromium only talk to 127.0.0.1.

Fixtures:
- ``env_dirs``: SCRATCHNET_DATA_DIR / SCRATCHNET_MODELS_DIR point at fresh temp dirs (``.data_dir``,
  ``.models_dir``).
- ``trained_model_store``: ``env_dirs`` plus one small trained model (active) in the models dir;
  returns the ``scratchnet.store.ModelStore``. Trained once per session, copied per test.
- ``streamlit_server``: base URL (``str``) of ``streamlit run app.py`` on a free port, started once per
  session with its own temp dirs holding a copy of that trained model; also has ``.data_dir``,
  ``.models_dir`` and ``.log_path`` (the server's stdout+stderr).
- ``browser`` / ``page``: Playwright Chromium (Debian's /usr/bin/chromium when present).
Mark browser tests ``@pytest.mark.browser``; ``-m "not browser"`` skips them.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tools.devserver import running_app

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TEST_MODEL_NAME = "test-model"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "browser: drives the real app in Chromium through Playwright (slower)"
    )


@dataclass
class EnvDirs:
    data_dir: Path
    models_dir: Path


@pytest.fixture
def float64(monkeypatch):
    """Layers and networks in float64, so finite differences are accurate (the maths is dtype-agnostic)."""
    import numpy as np

    monkeypatch.setattr("scratchnet.layers.DTYPE", np.float64)
    monkeypatch.setattr("scratchnet.network.DTYPE", np.float64)


@pytest.fixture
def env_dirs(tmp_path, monkeypatch) -> EnvDirs:
    """Point the app's data and models directories at empty temp dirs for this test."""
    dirs = EnvDirs(tmp_path / "data", tmp_path / "models")
    dirs.data_dir.mkdir()
    dirs.models_dir.mkdir()
    monkeypatch.setenv("SCRATCHNET_DATA_DIR", str(dirs.data_dir))
    monkeypatch.setenv("SCRATCHNET_MODELS_DIR", str(dirs.models_dir))
    return dirs


def _train_test_model(directory: Path) -> None:
    """A small model through the Train page's own code path (same metadata as the app writes)."""
    from scratchnet.datasets import load_sample
    from scratchnet.store import ModelStore
    from scratchnet.training import TrainConfig
    from scratchnet.ui.worker import TrainingJob

    config = TrainConfig(hidden=(32,), optimizer="adam", lr=3e-3, iterations=150, epochs=None,
                         batch_size=128, seed=0)
    store = ModelStore(directory)
    job = TrainingJob(config, load_sample(), store=store, name=TEST_MODEL_NAME, preset="test",
                      idle_timeout=None)
    snap = job.run()
    assert snap.status == "finished" and snap.result["model_name"] == TEST_MODEL_NAME, snap


@pytest.fixture(scope="session")
def _trained_model_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("trained-model")
    _train_test_model(directory)
    return directory


@pytest.fixture
def trained_model_store(env_dirs, _trained_model_dir):
    """A models dir holding one small trained model ("test-model", ~90% on the sample), active."""
    from scratchnet.store import ModelStore

    shutil.copytree(_trained_model_dir, env_dirs.models_dir, dirs_exist_ok=True)
    return ModelStore(env_dirs.models_dir)


@pytest.fixture(autouse=True)
def _stop_trainings_after_test():
    """Leave no background training running into the next test (the manager is process-wide)."""
    yield
    worker = sys.modules.get("scratchnet.ui.worker")
    manager = worker.existing_manager() if worker is not None else None
    if manager is not None:
        manager.stop_all()


class ServerURL(str):
    """The base URL, with the server's directories and log attached."""

    data_dir: Path
    models_dir: Path
    log_path: Path

    def log_mark(self) -> int:
        """Where the server log ends now; other tests share the server and may log on purpose."""
        return self.log_path.stat().st_size

    def log_since(self, mark: int) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(mark)
            return f.read().decode(errors="replace")


@pytest.fixture(scope="session")
def streamlit_server(tmp_path_factory, _trained_model_dir):
    base = tmp_path_factory.mktemp("server")
    data_dir, models_dir = base / "data", base / "models"
    data_dir.mkdir()
    shutil.copytree(_trained_model_dir, models_dir)
    log_path = base / "server.log"
    with running_app(data_dir, models_dir, log_path) as (base_url, _proc):
        url = ServerURL(base_url)
        url.data_dir, url.models_dir, url.log_path = data_dir, models_dir, log_path
        yield url


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        exe = CHROMIUM if Path(CHROMIUM).exists() else None
        b = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    p = context.new_page()
    p.set_default_timeout(20_000)
    yield p
    context.close()
