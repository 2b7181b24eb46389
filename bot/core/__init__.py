"""The kernel: messages, models, settings, i18n, stores, outbox, state and events.

Nothing in here imports anything outside bot.core (tests/test_import_layers.py)."""
