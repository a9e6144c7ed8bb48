"""Constrained scalar types shared by spec classes. Each states its rule in words."""

from __future__ import annotations

import keyword
import math
import re
from typing import Annotated

from pydantic import AfterValidator, StrictBool, StrictFloat, StrictInt, StrictStr
from pydantic_core import PydanticCustomError

# Names that generated code uses itself, and public attributes of torch.nn.Module, which a
# submodule of the same name would shadow. tests/test_names.py checks this list against torch.
RESERVED_NAMES = frozenset("""
    F FROZEN FROZEN_PARAMETERS Path T_destination WEIGHTS add_module clear items keys pop
    update values apply bfloat16 buffers build_model call_super_init children compile
    cpu cuda double dump_patches eval extra_repr float forward get_buffer get_extra_state
    gelu_tanh get_parameter get_submodule half ipu json keras leaky_relu load_state_dict load_weights math model
    modules mtia named_buffers named_children named_modules named_parameters nn np numpy
    parameters read_safetensors register_backward_hook register_buffer register_forward_hook
    register_forward_pre_hook register_full_backward_hook register_full_backward_pre_hook
    register_load_state_dict_post_hook register_load_state_dict_pre_hook register_module
    register_parameter register_state_dict_post_hook register_state_dict_pre_hook requires_grad_
    self set_extra_state set_submodule share_memory state_dict super tensors to to_empty torch
    train training type weights xpu zero_grad
    Scope Parameter Arithmetic Index Reduce MatMul ConcatExpand
""".split())

_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_SEGMENT = re.compile(r"([A-Za-z][A-Za-z0-9_]*|[0-9]+)\Z")


def _fail(kind: str, rule: str):
    raise PydanticCustomError(kind, rule)


def _name(value: str) -> str:
    if not _IDENT.match(value):
        _fail("name", "must be an identifier: letters, digits and underscores, starting with a letter")
    if keyword.iskeyword(value) or value in RESERVED_NAMES:
        _fail("name", "is a reserved name (a Python keyword or a name generated code uses)")
    return value


def _node_name(value: str) -> str:
    parts = value.split(".")
    if not all(_SEGMENT.match(p) for p in parts):
        _fail("name", "must be an identifier, or a dotted path of identifiers and indices such as "
                      "layer1.0.conv1")
    for part in parts:
        if part.isdigit() and (len(part) > 9 or part != str(int(part))):  # `a.01` would load as `a.1` in torch
            _fail("name", f"an index in a dotted name has at most 9 digits and no leading zero ({part[:12]!r})")
        if keyword.iskeyword(part) or part in RESERVED_NAMES:
            _fail("name", f"uses a reserved name{'' if len(parts) == 1 else f' ({part!r})'} (a Python keyword or "
                          "a name generated code uses)")
    return value


def _positive_int(value: int) -> int:
    if value <= 0:
        _fail("positive", "must be a positive integer")
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        _fail("finite", "must be a finite number")
    return float(value)


def _positive(value: float) -> float:
    if not value > 0:
        _fail("positive", "must be a positive number")
    return value


def _rate(value: float) -> float:
    if not 0 <= value < 1:
        _fail("range", "must be a number in [0, 1)")
    return value


def _unit(value: float) -> float:
    if not 0 < value <= 1:
        _fail("range", "must be a number in (0, 1]")
    return value


Name = Annotated[StrictStr, AfterValidator(_name)]
NodeName = Annotated[StrictStr, AfterValidator(_node_name)]
PositiveInt = Annotated[StrictInt, AfterValidator(_positive_int)]
Number = Annotated[StrictFloat, AfterValidator(_finite)]
PositiveFloat = Annotated[Number, AfterValidator(_positive)]
Rate = Annotated[Number, AfterValidator(_rate)]
UnitInterval = Annotated[Number, AfterValidator(_unit)]
Bool = StrictBool
