"""EveryCSR service assembly: settings, app factory, pipeline, channels and outbox."""
