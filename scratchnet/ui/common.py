"""Setup and shared resources for every page of the app.

A deep link (``/Draw``) runs only that page's script, never ``app.py``, so anything a page
relies on lives here and every page calls :func:`setup_page` first.

Heavy things are cached process-wide with ``st.cache_resource`` and shared read-only between
sessions: datasets (hundreds of MB of float32 for MNIST) and loaded models. Caches are keyed by
the directory they come from, so changing ``SCRATCHNET_DATA_DIR`` / ``SCRATCHNET_MODELS_DIR``
(as the tests do) never serves another directory's data.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import streamlit as st
from streamlit.errors import StreamlitAPIException

from scratchnet.errors import ScratchnetError
from scratchnet.network import Network

APP_NAME = "scratchnet"
DEFAULT_ICON = "🔢"
ROOT = Path(__file__).resolve().parents[2]  # the repository: app.py and pages/ live here

# Session-state key holding the id of this session's training job (see scratchnet.ui.worker).
JOB_KEY = "scratchnet_train_job"


def setup_page(title: str, icon: str = DEFAULT_ICON, *, training_badge: bool = True) -> None:
    """Configure the page and draw what every page shares (sidebar training status).

    Safe to call from every page: it only sets the page config and renders sidebar elements.
    The Train page passes ``training_badge=False``: it shows the training in full itself.
    """
    st.set_page_config(
        page_title=f"{title} · {APP_NAME}" if title else APP_NAME,
        page_icon=icon,
        layout="wide",
    )
    _sidebar_navigation()
    if training_badge:
        _sidebar_training_status()


NAV = (("app.py", "Home"), ("Train", "Train"), ("Draw", "Draw"), ("Inspect", "Inspect"), ("Live", "Live"))


def _sidebar_navigation() -> None:
    """Our own page list: Streamlit's would call the home page "app", after app.py.

    ``client.showSidebarNavigation = false`` in .streamlit/config.toml hides the built-in one.
    """
    with st.sidebar:
        for name, label in NAV:
            page_link(name, label)


def page_path(name: str) -> str | None:
    """Relative path of a page script (``"pages/2_Draw.py"``) if it exists, for st.page_link."""
    if name == "app.py":
        return "app.py" if (ROOT / "app.py").is_file() else None
    matches = sorted((ROOT / "pages").glob(f"*_{name}.py"))
    return f"pages/{matches[0].name}" if matches else None


def page_link(name: str, label: str, icon: str | None = None) -> None:
    """st.page_link to ``pages/*_<name>.py``; silently nothing if that page is absent."""
    path = page_path(name)
    if path is None:
        return
    try:
        st.page_link(path, label=label, icon=icon)
    except StreamlitAPIException:
        # Streamlit resolves the path against the *entrypoint*: a page run on its own (AppTest of
        # pages/x.py) has no pages/ folder beside it. A plain link still leads to the page.
        target = "" if name == "app.py" else name
        st.markdown(f"{icon or ''} [{label}](/{target})")


# --------------------------------------------------------------------------- model store


@st.cache_resource(show_spinner=False)
def _store_for(directory: str):
    from scratchnet.store import ModelStore

    return ModelStore(directory)


def get_store():
    """The :class:`scratchnet.store.ModelStore` of ``models_dir()``, one per directory."""
    from scratchnet.store import models_dir

    return _store_for(str(Path(models_dir()).expanduser().resolve()))


@st.cache_resource(show_spinner=False, max_entries=8)
def _load_model(path: str, mtime_ns: int, size: int) -> tuple[Network, dict]:
    from scratchnet.store import load_model

    return load_model(path)


def active_model() -> tuple[str, Network, dict] | None:
    """``(name, net, metadata)`` of the active model (newest valid one if none chosen), or None.

    Loaded once per (file, modification time) and shared between sessions: treat the network as
    read-only (predict, never train it in place).
    """
    store = get_store()
    try:
        info = store.resolve_active()
        if info is None:
            return None
        stat = info.path.stat()
        net, meta = _load_model(str(info.path), stat.st_mtime_ns, stat.st_size)
    except (OSError, ScratchnetError):
        # Replaced or deleted between listing and loading, or refused: fall back to a fresh look.
        loaded = store.load_active()
        if loaded is None:
            return None
        info = store.resolve_active()
        net, meta = loaded
        return (info.name if info else "model"), net, meta
    return info.name, net, meta


def describe_model(meta: dict | None, net: Network | None = None) -> str:
    """The network of a model for people: '784-256-128-10' or '28x28 → conv16-5 → … → 10'.

    From the loaded network when there is one, else from its metadata (``architecture``; model
    files from before convolutions have only ``sizes``).
    """
    if net is not None:
        return net.describe()
    meta = meta or {}
    sizes = meta.get("sizes")
    if isinstance(sizes, list) and sizes:
        return "-".join(str(s) for s in sizes)
    arch = meta.get("architecture")
    if isinstance(arch, str) and arch:
        from scratchnet.ui.train_form import describe_shape

        return describe_shape(arch)
    return "?"


def set_active_model(name: str | None) -> None:
    """Make ``name`` the active model for every page and session (None clears the choice)."""
    get_store().set_active(name)


# --------------------------------------------------------------------------- datasets


def _data_dir() -> str:
    from scratchnet.datasets import data_dir

    return str(Path(data_dir()).expanduser().resolve())


@st.cache_resource(show_spinner=False, max_entries=4)
def _dataset(kind: str, key: tuple, directory: str, _progress=None):
    from scratchnet.datasets import load_dataset

    kw = dict(key)  # ``directory`` is only part of the cache key: load_mnist reads data_dir() itself
    if kind == "mnist":
        kw["fallback"] = False  # a fallback must not be cached as "mnist"
        if _progress is not None:
            kw["progress"] = _progress
    return load_dataset(kind, **kw)


def mnist_available() -> bool:
    """Are the four MNIST files in the data directory (so loading needs no download)?"""
    from scratchnet import datasets

    return datasets.mnist_available()


def get_dataset(kind: str, **kw):
    """A :class:`scratchnet.datasets.Dataset`, loaded once per process and shared read-only.

    ``kind`` is ``"mnist"`` or ``"sample"``. MNIST is read from the data directory and only
    downloaded when ``download=True`` is passed (with an optional ``progress`` callback); when it
    is not available the bundled sample is returned with a note saying so, and the next call
    tries again (failures are not cached).
    """
    if kind not in ("mnist", "sample"):
        raise ValueError(f"get_dataset: unknown kind {kind!r} (use 'mnist' or 'sample')")
    progress = kw.pop("progress", None)
    if kind == "mnist":
        kw.setdefault("download", False)
    key = tuple(sorted(kw.items()))
    if kind == "sample":
        return _dataset("sample", key, "")
    try:
        return _dataset("mnist", key, _data_dir(), _progress=progress)
    except ScratchnetError as err:
        sample = _dataset("sample", (), "")
        why = "it could not be downloaded" if kw.get("download") else "it has not been downloaded yet"
        note = f"Full MNIST is not available ({why}: {err}); using the bundled 5,000-digit sample."
        return dataclasses.replace(sample, notes=[*sample.notes, note])


# --------------------------------------------------------------------------- errors


def show_error(err: BaseException) -> None:
    """Show an error the way every page does: the user's message, or a short bug report."""
    if isinstance(err, ScratchnetError):
        st.error(str(err), icon="⚠️")
    else:
        st.error(f"Something went wrong inside scratchnet ({type(err).__name__}: {err}).", icon="🐞")


# --------------------------------------------------------------------------- trainings


def keep_alive(job) -> None:
    """Tell ``job`` this browser session watches it, for as long as its connection stays open.

    Polls are the heartbeat, but a background tab's timers may fire only once a minute; the
    websocket is the better witness. Outside a real server (AppTest) this does nothing.
    """
    from streamlit import config
    from streamlit.runtime import Runtime
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    # AppTest installs a MagicMock runtime whose is_active_session() is always truthy.
    if ctx is None or not Runtime.exists() or config.get_option("global.appTest"):
        return
    runtime, session_id = Runtime.instance(), ctx.session_id
    job.add_keepalive(session_id, lambda: runtime.is_active_session(session_id))


# --------------------------------------------------------------------------- sidebar


def _sidebar_training_status() -> None:
    """A small live status of this session's training, on every page.

    Its polling doubles as the session's heartbeat, so a training keeps running while the
    person looks at the Draw page and is stopped once no page polls it any more. When the
    training ends, the page reruns once so it picks up the new active model at once.
    """
    job_id = st.session_state.get(JOB_KEY)
    if job_id is None:
        return
    from scratchnet.ui.worker import get_manager

    job = get_manager().get(job_id)
    if job is None:
        return
    snap = job.snapshot()
    with st.sidebar:
        if snap.active:
            keep_alive(job)
            _training_badge(job_id)
        else:
            _ended_badge(snap)


def _ended_badge(snap) -> None:
    if snap.result and snap.result.get("model_name"):
        active = " and made active" if snap.result.get("activated") else ""
        st.caption(f"✅ Training {snap.status}: model **{snap.result['model_name']}** saved{active}.")
    else:
        st.caption(f"Training {snap.status}; see the Train page.")


@st.fragment(run_every=2.0)
def _training_badge(job_id: str) -> None:
    from scratchnet.ui.worker import get_manager

    job = get_manager().get(job_id)
    if job is None:
        return
    snap = job.poll()
    if snap.status == "queued":
        st.caption(f"⏳ Training queued (number {snap.queue_position} in line).")
    elif snap.active:
        st.caption("🏋️ Training in progress")
        st.progress(snap.fraction, text=snap.progress_text)
    else:
        st.rerun()  # the whole page, once: stop polling, show the new model
