"""Draw a digit (or upload a picture of one) and watch the network read it."""

import streamlit as st

from scratchnet.ui import common, draw, room_draw

common.setup_page("Draw", icon="✏️")
if "room" in st.query_params and room_draw.render():
    st.stop()  # the room mode; an unknown or closed room said why and falls through
st.title("✏️ Draw a digit")

chosen = draw.choose_model()
if chosen is None:
    draw.quick_model_offer()
    st.stop()
name, net, _meta = chosen

tab_draw, tab_upload = st.tabs([":material/draw: Draw", ":material/photo_camera: Upload a picture"])
with tab_draw:
    draw.input_panel(net, name, draw.canvas_input, source="canvas",
                     caption="Draw one digit, large, in the black square. The network answers when you lift the pen.",
                     empty_hint="Draw a digit on the canvas to see what the network reads.")
with tab_upload:
    draw.input_panel(net, name, draw.upload_input, source="upload",
                     empty_hint="Upload a photo or scan of one handwritten digit.")

st.divider()
draw.teach_section(name)
st.divider()
draw.drawings_summary(name)
