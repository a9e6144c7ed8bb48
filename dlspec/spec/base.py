"""The strict pydantic base every spec class derives from."""

from __future__ import annotations

import difflib

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError


def suggest(word: str, choices) -> str:
    """' (did you mean 'units'?)' for a near miss, else ''."""
    close = difflib.get_close_matches(str(word), sorted(choices), n=1, cutoff=0.6)
    return f", did you mean {close[0]!r}?" if close else ""


class Strict(BaseModel):
    """Forbids unknown keys (with a suggestion) and coercion between types."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid", use_attribute_docstrings=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data):
        if isinstance(data, dict):
            for key in data:
                if key not in cls.model_fields:
                    raise PydanticCustomError(
                        "unknown_key", "unknown key{hint}", {"at": key, "hint": suggest(key, cls.model_fields)})
        return data

    def given(self, field: str) -> bool:
        """Whether ``field`` was written in the spec (not defaulted)."""
        return field in self.model_fields_set


def invalid(field: str, rule: str):
    """Raise a rule violation located at ``field`` of the model being validated."""
    raise PydanticCustomError("rule", rule, {"at": field})
