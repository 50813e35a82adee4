"""Train page: dataset + hyper-parameters -> live charts -> saved, active model."""

from scratchnet.ui.common import setup_page
from scratchnet.ui.train_page import render

setup_page("Train", "🏋️", training_badge=False)
render()
