"""Live: open a room, the audience draws on their phones, the wall shows what the network reads."""

from scratchnet.ui import live
from scratchnet.ui.common import setup_page

setup_page("Live", "📡")
live.render()
