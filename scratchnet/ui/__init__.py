"""Streamlit-side helpers: the only part of scratchnet that imports Streamlit.

``common`` is what every page calls first (page setup, the model store, the active model, cached
datasets); ``worker`` is the background training machinery and deliberately does not import
Streamlit, so it can be tested and benchmarked headless.
"""
