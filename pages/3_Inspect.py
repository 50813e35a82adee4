"""Inspect: look inside the active model (evaluation, mistakes, weights, activations, the maths).

Thin page: everything is rendered by scratchnet.ui.inspect_view from scratchnet.inspect.
"""

from scratchnet.ui.inspect_view import render

render()
