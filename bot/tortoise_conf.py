"""Config for tortoise's own CLI (``make migrations`` runs ``tortoise makemigrations``)."""

from bot.core.settings import get_settings
from bot.core.storage import tortoise_config

TORTOISE_ORM = tortoise_config(get_settings().database_url)
