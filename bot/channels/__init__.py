"""Channel adapters: each package turns its wire protocol into ``Incoming`` and ``Reply`` into
its wire format, and exposes ``setup(app, settings)`` (routes, a cleanup context registering its
sender with the :class:`~bot.core.channel_registry.ChannelRegistry`). The app factory mounts them."""
