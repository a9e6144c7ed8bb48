"""The spec language as JSON Schema, for editor completion and validation."""

from __future__ import annotations

from .spec import Spec

SCHEMA_ID = "https://dlspec.dev/schema/v1.json"


def schema() -> dict:
    """JSON Schema (draft 2020-12) of spec version 1, with a description on every key."""
    out = Spec.model_json_schema()
    # a derived spec (`base:`) holds only what it changes: the model's keys come from its base
    whole = [key for key in out.pop("required") if key != "dlspec"]
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            **out, "title": "dlspec model spec, version 1", "required": ["dlspec"],
            "if": {"not": {"required": ["base"]}}, "then": {"required": whole}}
