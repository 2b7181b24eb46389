"""The kernel: messages, models, settings, i18n, stores, outbox, state and events.

Nothing in here imports anything outside bot.core (tests/test_import_layers.py)."""

# ``from bot.core import normalize`` is the text normaliser (the function), as its callers
# expect; without this the name is the submodule and every command registration fails
from bot.core.normalize import normalize as normalize
