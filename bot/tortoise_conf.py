"""Config for tortoise's own CLI (``make migrations`` runs ``tortoise makemigrations``)."""
from bot.settings import get_settings
from bot.storage import tortoise_config

TORTOISE_ORM = tortoise_config(get_settings().database_url)
