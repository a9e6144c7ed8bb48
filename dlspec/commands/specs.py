"""The commands that read specs: validate, summary, zoo, schema."""

from __future__ import annotations

import json
import sys

from ..errors import SpecError
from . import print_json


def counts_phrase(graph) -> str:
    """"235,146 parameters", with frozen parameters and buffers named apart when there are any."""
    trainable, frozen, buffers = graph.counts()
    text = f"{trainable + frozen:,} parameters"
    text += f" ({frozen:,} frozen)" if frozen else ""
    return text + (f", {buffers:,} buffers" if buffers else "")



def cmd_validate(args) -> int:
    """Validate every file, reporting each; exit 2 if any failed."""
    from ..api import load

    results = []
    for path in args.specs:
        try:
            model = load(path)
        except SpecError as err:
            results.append({"file": path, "ok": False, "error": str(err), "line": err.loc.line or None,
                            "col": err.loc.col or None, "path": err.path, "rule": err.rule})
            if not args.json:
                print(f"error: {err}", file=sys.stderr)
            continue
        trainable, frozen, buffers = model.graph.counts()
        results.append({"file": path, "ok": True, "name": model.name, "nodes": len(model.graph.nodes),
                        "trainable_params": trainable, "frozen_params": frozen, "buffers": buffers})
        if not args.json:
            print(f"{path}: ok ({model.name}: {len(model.graph.nodes)} nodes, {counts_phrase(model.graph)})")
    failed = sum(not r["ok"] for r in results)
    if args.json:
        print_json({"ok": not failed, "files": results})
    elif failed and len(results) > 1:
        print(f"{failed} of {len(results)} files failed", file=sys.stderr)
    return 2 if failed else 0


def cmd_summary(args) -> int:
    from ..api import load
    from ..summary import as_dict, summary

    model = load(args.spec)
    if args.json:
        print_json(as_dict(model))
    else:
        print(summary(model))
    return 0


def cmd_zoo(args) -> int:
    """List the packaged specs, usable as zoo:NAME by every command and by `base:`."""
    from ..api import load
    from ..loader import ZOO, zoo_names

    entries = []
    for name in zoo_names():
        model = load(ZOO / f"{name}.yaml")
        trainable, frozen, buffers = model.graph.counts()
        first = model.spec.description.strip().split("\n\n")[0].replace("\n", " ") if model.spec.description else ""
        entries.append({"name": f"zoo:{name}", "file": str(ZOO / f"{name}.yaml"), "nodes": len(model.graph.nodes),
                        "trainable_params": trainable, "frozen_params": frozen, "buffers": buffers,
                        "description": first})
    if args.json:
        print_json(entries)
        return 0
    import textwrap

    width = max(len(e["name"]) for e in entries)
    for e in entries:
        counts = f"{e['trainable_params'] + e['frozen_params']:>11,} params"
        counts += f" ({e['frozen_params']:,} frozen)" if e["frozen_params"] else ""
        print(f"{e['name']:<{width}}  {counts}")
        if e["description"]:
            print("    " + textwrap.shorten(e["description"], 96, placeholder=" ..."))
    print(f"\n{len(entries)} specs in {ZOO}; use them as zoo:NAME (dlspec summary zoo:resnet18, base: zoo:resnet18)")
    return 0


def cmd_schema(args) -> int:
    from ..schema import schema

    text = json.dumps(schema(), indent=2) + "\n"
    if args.output:
        from ..weights import write_atomic

        write_atomic(args.output, text)
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0

