"""Home page: what scratchnet is, the state of data and models, and links to the pages.

Starts fast and offline: it only looks at files (no dataset is loaded, nothing is downloaded).
"""

import streamlit as st

from scratchnet.ui.common import active_model, get_store, mnist_available, page_link, setup_page, show_error

setup_page("Home", "🔢")

st.title("🔢 scratchnet")
st.markdown(
    "A neural network written from scratch in NumPy — every forward pass, gradient and "
    "optimizer step spelled out, no ML framework. "
    "Train it on MNIST handwritten digits right here and watch its accuracy climb. "
    "Then draw a digit and see what it thinks, or look inside at its weights and mistakes."
)

st.subheader("State of things")
left, right = st.columns(2)
with left:
    if mnist_available():
        st.success("**Dataset:** full MNIST is downloaded (60,000 training + 10,000 test digits).", icon="📚")
    else:
        st.info(
            "**Dataset:** the bundled 5,000-digit MNIST sample is ready offline. Full MNIST "
            "(60,000 + 10,000 digits, 11 MB) downloads from the Train page when you want it.",
            icon="📚",
        )
with right:
    try:
        current = active_model()
    except Exception as err:  # a damaged store must not take the home page down
        current = None
        show_error(err)
    if current is None:
        st.warning("**Model:** none trained yet. Train one on the Train page (a few seconds).", icon="🧠")
    else:
        name, net, meta = current
        metrics = meta.get("metrics") or {}
        acc = metrics.get("test_accuracy")
        which = "test"
        if acc is None:
            acc, which = metrics.get("val_accuracy"), "validation"
        shape = net.describe()
        figure = f", {which} accuracy **{acc:.1%}**" if isinstance(acc, (int, float)) else ""
        dataset = (meta.get("dataset") or {}).get("name", "?")
        st.success(f"**Model:** `{name}` ({shape}, trained on {dataset}){figure}.", icon="🧠")
    problems = get_store().problems
    for problem in problems[:3]:
        st.caption(f"⚠️ {problem}")

st.subheader("Pages")
page_link("Train", "**Train** — pick data and hyper-parameters, press Start, watch the curves", "🏋️")
page_link("Draw", "**Draw** — draw a digit and see the network's probabilities", "✏️")
page_link("Inspect", "**Inspect** — weights and filters as images, feature maps, confusion matrix, mistakes", "🔍")
page_link("Live", "**Live** — open a room: the audience draws on their phones, the wall shows what the network reads", "📡")
