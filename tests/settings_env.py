"""Does an environment variable name a setting? Shared by the compose and chart checks."""

from __future__ import annotations

from pydantic import BaseModel

from pipeline.config import ENV_DELIMITER, ENV_PREFIX, Settings


def is_setting(env_name: str) -> bool:
    """Does NEWSMON_SECTION__KEY (or its _FILE variant) name a field of the settings tree?"""
    if not env_name.startswith(ENV_PREFIX):
        return False
    path = env_name[len(ENV_PREFIX) :].lower().removesuffix("_file").split(ENV_DELIMITER.lower())
    model: object = Settings
    for part in path:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return False
        field = model.model_fields.get(part)
        if field is None:
            return False
        model = field.annotation
    return not (isinstance(model, type) and issubclass(model, BaseModel))
