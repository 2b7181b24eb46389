"""Channel adapters. Each module listed in ``CHANNEL_MODULES`` exposes
``setup(app, settings)``: it mounts its routes and appends a cleanup context that
registers its sender with the :class:`~bot.core.channel_registry.ChannelRegistry`."""

CHANNEL_MODULES: list[str] = [
    "bot.channels.webchat",
    "bot.channels.telegram",
    "bot.channels.wechat",
    "sms_gateway.channel",
]
