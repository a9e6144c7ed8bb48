"""Specs that start from another spec (`base:`), for transfer learning.

The derived document is merged into its base before validation: top-level keys of the derived spec
replace the base's, `replace:` swaps top-level layers by name, `layers:` of the derived spec are
appended after the base's. Every value keeps the position of the file it came from, so errors point
into the right file.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import SpecError
from ..loader import ZOO, ZOO_PREFIX, Document, format_path, read, resolve

DERIVED_KEYS = ("base", "replace")


def _graft(target: Document, source: Document, src: tuple, dst: tuple) -> None:
    """Copy the positions of ``source``'s subtree at ``src`` into ``target`` under ``dst``."""
    for table_name in ("values", "keys"):
        table, into = getattr(source, table_name), getattr(target, table_name)
        for path, loc in table.items():
            if path[:len(src)] == src:
                into[dst + path[len(src):]] = loc


def resolve_base(doc: Document, chain: tuple[str, ...] = ()) -> Document:
    """Merge ``doc`` into the spec its ``base:`` names (recursively); other documents pass through. ``chain``: the
    files that named this one as their base, nearest last."""
    data = doc.data
    if not isinstance(data, dict) or "base" not in data:
        if isinstance(data, dict) and "replace" in data:
            raise SpecError(doc.loc(("replace",), key=True), "replace", "`replace` needs a `base` spec", None,
                            has_received=False)
        return doc
    base_ref = data["base"]
    if not isinstance(base_ref, str):
        raise SpecError(doc.loc(("base",)), "base", "must be the path of a spec file", base_ref)
    if len(chain) > 8:
        raise SpecError(doc.loc(("base",)), "base", "bases nest too deeply (at most 9 in a chain)", base_ref)
    for key, kind, rule in (("replace", dict, "must be a mapping from layer names to layers"),
                            ("layers", list, "must be a list")):
        if not isinstance(data.get(key, kind()), kind):
            raise SpecError(doc.loc((key,)), key, rule, data[key])
    if base_ref.startswith(ZOO_PREFIX):
        try:
            path = resolve(base_ref)
        except SpecError as err:
            raise SpecError(doc.loc(("base",)), "base", err.rule, base_ref) from None
    else:
        path = _find(doc, base_ref)
    files = (*chain, str(Path(doc.file).resolve()))
    if str(Path(path).resolve()) in files:
        names = [Path(f).name for f in files[files.index(str(Path(path).resolve())):]] + [Path(path).name]
        raise SpecError(doc.loc(("base",)), "base", f"bases form a cycle: {' -> '.join(names)}", base_ref)
    base = resolve_base(read(path), files)
    if not isinstance(base.data, dict) or not isinstance(base.data.get("layers", []), list):
        where = () if not isinstance(base.data, dict) else ("layers",)
        raise SpecError(base.loc(where), format_path(where), "a base spec must be a mapping whose `layers` is a list",
                        base.data if not where else base.data["layers"])
    merged = Document({k: v for k, v in base.data.items()}, doc.file)
    _graft(merged, base, (), ())
    for key, value in data.items():
        if key in DERIVED_KEYS or key == "layers":
            continue
        merged.data[key] = value
        for table in (merged.values, merged.keys):
            for p in [p for p in table if p[:1] == (key,)]:
                del table[p]
        _graft(merged, doc, (key,), (key,))
    layers = list(merged.data.get("layers", []))
    names = [layer.get("name") if isinstance(layer, dict) else None for layer in layers]
    for name, new in (data.get("replace") or {}).items():
        if name not in names:
            raise SpecError(doc.loc(("replace", name), key=True), format_path(("replace", name)),
                            "no top-level layer of the base has this name", name)
        i = names.index(name)
        layers[i] = {"name": name, **new} if isinstance(new, dict) and "name" not in new else new
        for table in (merged.values, merged.keys):
            for p in [p for p in table if p[:2] == ("layers", i) and len(p) > 2]:
                del table[p]
        _graft(merged, doc, ("replace", name), ("layers", i))
    for k, extra in enumerate(data.get("layers", [])):
        _graft(merged, doc, ("layers", k), ("layers", len(layers)))
        layers.append(extra)
    merged.data["layers"] = layers
    merged.data.pop("base", None)
    return merged


def _find(doc: Document, base_ref: str) -> Path:
    """The file ``base:`` names: relative to the derived spec, else in the zoo."""
    try:
        for path in (Path(doc.file).parent / base_ref, ZOO / base_ref):
            if path.exists():
                return path
    except (OSError, ValueError) as err:  # a name too long for the OS, a NUL byte
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise SpecError(doc.loc(("base",)), "base", f"cannot be a file name ({reason})", base_ref) from None
    raise SpecError(doc.loc(("base",)), "base", "no such spec file (relative to this file, or in the zoo)", base_ref)
