"""Draw a digit (or upload a picture of one) and watch the network read it."""

import streamlit as st

from scratchnet.ui import common, draw

common.setup_page("Draw", icon="✏️")
st.title("✏️ Draw a digit")

chosen = draw.choose_model()
if chosen is None:
    draw.quick_model_offer()
    st.stop()
name, net, _meta = chosen

tab_draw, tab_upload = st.tabs([":material/draw: Draw", ":material/photo_camera: Upload a picture"])
with tab_draw:
    left, right = st.columns([1, 1], gap="large")
    with left:
        st.caption("Draw one digit, large, in the black square. The network answers when you lift the pen.")
        canvas = draw.canvas_input()
    with right:
        reading = draw.show_reading(net, canvas, empty_hint="Draw a digit on the canvas to see what the network reads.",
                                    source="canvas")
        if reading is not None:
            draw.was_this_right(reading, name, "canvas")
with tab_upload:
    left, right = st.columns([1, 1], gap="large")
    with left:
        picture = draw.upload_input()
    with right:
        reading = draw.show_reading(net, picture, empty_hint="Upload a photo or scan of one handwritten digit.",
                                    source="upload")
        if reading is not None:
            draw.was_this_right(reading, name, "upload")

st.divider()
draw.drawings_summary(name)
