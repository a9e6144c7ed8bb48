"""Spec fuzzing shared by tests/test_fuzz.py (a CI budget) and bench/fuzz.py (the slow run).

A case is spec text (plus base files for derived specs). It is made from a seed (a zoo spec or a
docs example) by structural mutations of the parsed data, by raw-text mutations, or as a derived
spec. Its outcome must be one of:

- ``ok``: the spec validates, and the torch and Keras sources it generates compile;
- ``error``: a :class:`dlspec.SpecError` whose every line is ``file:line:col: ...``, or a one-line
  :class:`dlspec.UsageError` (a backend refusing what it cannot express);
- anything else is a ``crash``, and a case that runs past its time guard is a ``hang``.

Random choices go through a :class:`Source`, so the same mutators serve hypothesis (the tests) and a
seeded :class:`random.Random` (the bench, which needs no hypothesis).
"""

from __future__ import annotations

import ast
import builtins
import json
import random
import re
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

import dlspec
from dlspec.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
LOCATED = re.compile(r"^[^\n]+:\d+:\d+: [^\n]+$")
CASE_SECONDS = 20.0  # CPU-time guard of one case: the largest valid spec (10,000 nodes) takes about 3 s
WALL_SECONDS = 120.0  # wall-clock guard, for a case that would block without using the CPU
SHAPES = ([3, 16, 16], [16], [8, 12], [2, 4, 6, 6], [1, 28, 28], [4, 9])


class Source:
    """Random choices: from hypothesis' ``data.draw`` or from a seeded ``random.Random``."""

    def __init__(self, rng: random.Random | None = None, data=None):
        self.rng, self.data = rng, data
        if data is not None:
            from hypothesis import strategies as st

            self.st = st

    def below(self, n: int) -> int:
        """An integer in [0, n)."""
        if self.data is not None:
            return self.data.draw(self.st.integers(0, n - 1))
        return self.rng.randrange(n)

    def choice(self, seq):
        return seq[self.below(len(seq))]

    def chance(self, p: float) -> bool:
        return self.below(1000) < p * 1000


# --- seeds ---------------------------------------------------------------------------------------------------

def _doc_blocks() -> list[str]:
    blocks = []
    for name in ("docs/spec.md", "docs/training.md", "README.md"):
        path = ROOT / name
        if path.exists():
            blocks += re.findall(r"```yaml\n(.*?)```", path.read_text(), re.S)
    return blocks


def seeds() -> list[tuple[str, str]]:
    """(name, spec text): every zoo spec, every docs example that is a whole spec, and every docs
    fragment of layers, wrapped into a spec."""
    out = [(p.name, p.read_text()) for p in sorted((ROOT / "specs").glob("*.yaml"))]
    for k, block in enumerate(_doc_blocks()):
        try:
            data = yaml.safe_load(block)
        except yaml.YAMLError:
            continue
        if isinstance(data, dict) and "dlspec" in data:
            out.append((f"docs-{k}.yaml", block))
            continue
        layers = data if isinstance(data, list) else [data] if isinstance(data, dict) and "type" in data else None
        if layers and all(isinstance(layer, dict) for layer in layers):
            shape = SHAPES[k % len(SHAPES)]
            spec = {"dlspec": 1, "name": f"doc{k}", "inputs": {"x": {"shape": shape}}, "layers": layers}
            out.append((f"docs-{k}.yaml", yaml.safe_dump(spec, sort_keys=False)))
    return out


# --- values that break things --------------------------------------------------------------------------------

NAMES = ["none", "true", "false", "None", "class", "def", "lambda", "self", "print", "input", "sum", "len", "int",
         "list", "x", "F", "f", "np", "nn", "torch", "keras", "json", "model", "weights", "WEIGHTS", "Path",
         "build_model", "load_weights", "read_safetensors", "BatchNorm", "TorchPool", "exception", "value_error",
         "a" * 90, "b" * 300, "layer1.0.conv1", "a.b", "0", "1x", "_x", "x y", "a\nb", "ünï", "a-b", "", "logits",
         "conv1", "fc", "layer1", "type", "inputs", "block", "dense_1"]
VALID_NAMES = ["none", "true", "false", "print", "input", "sum", "len", "int", "list", "f", "BatchNorm", "TorchPool",
               "PositionalEmbedding", "exception", "value_error", "a" * 90, "b" * 300, "Dense", "Model", "Input", "ops",
               "layers", "x_nhwc", "build", "call", "x_2", "Exception", "object", "super", "open", "range", "tuple"]
INTS = [0, 1, 2, 3, 4, 7, 8, 16, 64, 255, -1, -3, 2**31 - 1, 2**31, 2**32, 2**53, 2**63, 2**64, 10**19, 10**30]
FLOATS = [0.0, -0.0, 0.5, 1.0, 1e-300, 1e300, 1.5, -2.5, float("inf"), float("-inf"), float("nan")]
STRINGS = ["same", "valid", "relu", "gelu", "bilinear", "nearest", "zeros", "he_normal", "float32", "int64",
           "$units", "$x", "mnist_mlp.yaml", "resnet18.yaml", "../x.yaml", "a" * 5000, "\x00", "'", '"""', "\\",
           "{", "!!python/object:os.system", "${HOME}", "%s", "é"]


def scalar(src: Source):
    kind = src.below(6)
    if kind == 0:
        return src.choice(INTS)
    if kind == 1:
        return src.choice(FLOATS)
    if kind == 2:
        return src.choice(NAMES)
    if kind == 3:
        return src.choice(STRINGS)
    if kind == 4:
        return src.choice([None, True, False])
    return src.choice([[], {}, [1], [3, 3], [0, 1, 2], [[1, 1], [1, 1]], {"a": 1}, [None], [2**31, 2**31]])


# --- structural mutations ------------------------------------------------------------------------------------

def _paths(data, path=()):
    yield path, data
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _paths(v, path + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _paths(v, path + (i,))


def _parent(data, path):
    for part in path[:-1]:
        data = data[part]
    return data


def _layer_types() -> list[str]:
    from dlspec.spec import LAYER_TYPES

    return sorted(LAYER_TYPES) + ["block"]


def mutate_data(data, src: Source, steps: int):
    """Apply ``steps`` random edits to parsed spec data (in place where possible); returns the data."""
    for _ in range(steps):
        paths = list(_paths(data))
        path, value = src.choice(paths)
        op = src.below(10)
        if not path:
            if op < 2:
                data = scalar(src)
            continue
        parent, key = _parent(data, path), path[-1]
        if op <= 2:
            parent[key] = scalar(src)
        elif op == 3 and isinstance(parent, dict):
            del parent[key]
        elif op == 3 and isinstance(parent, list) and len(parent) > 1:
            parent.pop(key)
        elif op == 4 and isinstance(parent, list):
            parent.insert(key, json.loads(json.dumps(value)))  # duplicate
        elif op == 5 and isinstance(value, dict):
            value[src.choice(["type", "name", "inputs", "units", "filters", "kernel", "repeat", "bogus", "base",
                              "replace", "activation", "axis"])] = scalar(src)
        elif op == 6 and isinstance(value, dict) and "type" in value:
            value["type"] = src.choice(_layer_types())
        elif op == 7 and isinstance(value, int) and not isinstance(value, bool):
            parent[key] = src.choice([value + 1, value - 1, -value, value * 2, value * 1000, 0, 2**31])
        elif op == 8 and isinstance(value, dict) and "name" in value:
            value["name"] = src.choice(NAMES)
        elif op == 9:
            parent[key] = [value] if src.chance(0.5) else {"a": value}
    return data


def render(data, src: Source) -> str:
    """YAML (block or flow style) or JSON text for ``data``."""
    style = src.below(3)
    if style == 0:
        return json.dumps(data, indent=2, allow_nan=True)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=None if style == 1 else False,
                          width=10**6)


# --- raw-text mutations --------------------------------------------------------------------------------------

TOKENS = ["{", "}", "[", "]", ":", ",", "- ", "#", "&a ", "*a", "!!str ", "!!python/name:os.system ", "|", ">",
          "'", '"', "\n", "\t", "  ", "\x00", "\ufeff", "\u2028", "---\n", "...\n", "? ", "%YAML 1.1\n", "~",
          "null", "1e999", "0x1F", "0o17", "1_000", ".inf", "-.nan", "yes", "\\", "\r\n", "\x85", "é"]


def mutate_text(text: str, src: Source, steps: int) -> str:
    for _ in range(steps):
        n = len(text)
        at = src.below(n + 1)
        op = src.below(9)
        if op <= 2:
            text = text[:at] + src.choice(TOKENS) + text[at:]
        elif op == 3 and n:
            text = text[:at] + text[at + 1 + src.below(20):]
        elif op == 4:
            lines = text.split("\n")
            i = src.below(len(lines))
            lines.insert(i, lines[i])
            text = "\n".join(lines)
        elif op == 5:
            runs = list(re.finditer(r"-?\d+(\.\d+)?", text))
            if runs:
                m = src.choice(runs)
                text = text[:m.start()] + src.choice(
                    ["9" * 5000, "2147483648", "-1", "0", "1e400", "99999999999999999999", "1.5"]) + text[m.end():]
        elif op == 6:
            lines = text.split("\n")
            i = src.below(len(lines))
            lines[i] = src.choice(["", " ", "  ", "    "]) + lines[i].lstrip() if src.chance(0.5) else " " + lines[i]
            text = "\n".join(lines)
        elif op == 7:
            text = text[:at]
        else:
            depth = src.choice([10, 31, 33, 200, 1000, 5000])
            text = text[:at] + src.choice(["[" * depth + "]" * depth, "{a: " * depth + "1" + "}" * depth]) + text[at:]
    return text


# --- derived specs -------------------------------------------------------------------------------------------

def derived(seed_text: str, src: Source) -> tuple[str, dict[str, str]]:
    """A spec with `base:` (a zoo name, a written base file, itself, or nonsense) and random overrides."""
    files = {}
    ref = src.choice(["mnist_mlp.yaml", "resnet18.yaml", "digits_cnn.yaml", "base.yaml", "spec.yaml", "missing.yaml",
                      "a" * 300, "/" * 3, "", "sub/" * 50 + "x.yaml", ".", "base2.yaml"])
    if ref in ("base.yaml", "base2.yaml"):
        files["base.yaml"] = seed_text if src.chance(0.7) else mutate_text(seed_text, src, 1 + src.below(3))
        if ref == "base2.yaml":
            files["base2.yaml"] = "base: base.yaml\n"
    spec: dict = {"base": ref if src.chance(0.9) else scalar(src)}
    if src.chance(0.5):
        spec["name"] = src.choice(["derived", "none", "true", "x"])
    if src.chance(0.5):
        spec["replace"] = src.choice([{"logits": {"type": "dense", "units": 3}}, {"fc": {"type": "dense", "units": 5}},
                                      {"nope": {}}, [1], 3, {"logits": 3}, {"logits": None}, {}, "x"])
    if src.chance(0.5):
        spec["layers"] = src.choice([[{"type": "dense", "units": 2}], 3, {"a": 1}, [], [1], "dense",
                                     [{"type": "softmax"}], [{"type": "dense", "units": 2}] * 2])
    if src.chance(0.2):
        spec["inputs"] = src.choice([{"x": {"shape": [4]}}, {"image": {"shape": [1, 28, 28]}}, [], None])
    spec = mutate_data(spec, src, src.below(2))
    return render(spec, src), files


# --- large specs: long chains, deep names, nested blocks (rare: each costs up to a few seconds) ---------------

def large(src: Source) -> str:
    head = "dlspec: 1\nname: big\ninputs:\n  x: {shape: [4]}\n"
    kind = src.below(4)
    if kind == 0:  # a chain written last-to-first: deep recursion in a naive topological sort
        n = src.choice([1100, 3000, 10_001])
        lines = [f"  - {{type: activation, activation: relu, name: l{i}, inputs: [l{i + 1}]}}" for i in range(n - 1)]
        return head + "outputs: [l0]\nlayers:\n" + "\n".join(lines) + \
            f"\n  - {{type: activation, activation: relu, name: l{n - 1}, inputs: [x]}}\n"
    if kind == 1:  # a name of many dotted parts: deeply nested generated modules
        parts = src.choice([63, 64, 65, 300, 2000])
        return head + f"layers:\n  - {{type: dense, units: 2, name: {'.'.join(['a'] * parts)}}}\n"
    if kind == 2:  # blocks nested 16 or 17 deep, each repeated
        depth, repeat = src.choice([15, 16, 17]), src.choice([1, 2, 3])
        blocks = ["  b0:\n    layers:\n      - {type: dense, units: 4}"]
        blocks += [f"  b{i}:\n    layers:\n      - {{type: block, block: b{i - 1}, repeat: {repeat}}}"
                   for i in range(1, depth)]
        return head + "blocks:\n" + "\n".join(blocks) + f"\nlayers:\n  - {{type: block, block: b{depth - 1}}}\n"
    n = src.choice([500, 2000])  # many inputs into one node
    inputs = "".join(f"  x{i}: {{shape: [2]}}\n" for i in range(n))
    return (f"dlspec: 1\nname: wide\ninputs:\n{inputs}layers:\n  - {{type: concat, axis: 1, inputs: "
            f"[{', '.join(f'x{i}' for i in range(n))}]}}\n")


# --- running a case ------------------------------------------------------------------------------------------

@dataclass
class Case:
    kind: str
    seed: str
    text: str
    files: dict[str, str] = field(default_factory=dict)


def make_case(src: Source, corpus: list[tuple[str, str]]) -> Case:
    name, text = src.choice(corpus)
    if src.chance(0.003):
        return Case("large", "-", large(src))
    kind = src.choice(["data", "data", "data", "text", "text", "derived"])
    if kind == "data":
        data = yaml.safe_load(text)
        if src.chance(0.3) and isinstance(data, dict):  # a valid rename: exercises generated names
            layers = [v for _, v in _paths(data) if isinstance(v, dict) and "type" in v]
            if layers:
                src.choice(layers)["name"] = src.choice(VALID_NAMES)
            if src.chance(0.3):
                data["name"] = src.choice(VALID_NAMES)
        data = mutate_data(data, src, src.choice([0, 1, 1, 1, 2, 3, 5]))
        return Case(kind, name, render(data, src))
    if kind == "text":
        return Case(kind, name, mutate_text(text, src, 1 + src.below(4)))
    spec, files = derived(text, src)
    return Case(kind, name, spec, files)


class Hang(BaseException):
    """Raised by the time guard (a BaseException, so no ``except Exception`` in dlspec swallows it)."""


def _alarm(signum, frame):
    raise Hang()


@dataclass
class Outcome:
    status: str  # ok, error, crash, hang
    detail: str = ""


def check_message(text: str) -> str | None:
    """Why an error message breaks the rules (one located line per problem), or None."""
    for line in text.split("\n"):
        if not LOCATED.match(line):
            return f"not a located line: {line[:200]!r}"
    if "Traceback" in text:
        return "a traceback in the message"
    return None


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp,
           ast.GeneratorExp)


def _names(node, ctx):
    """Names read (ctx Load) or bound (ctx Store) in ``node``, not descending into nested scopes."""
    out, stack = set(), [node]
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Name) and isinstance(n.ctx, ctx):
            out.add(n.id)
        stack.extend(c for c in ast.iter_child_nodes(n) if not isinstance(c, _SCOPES))
    return out


def check_source(source: str, backend: str) -> str | None:
    """Why generated source is broken, or None: it must compile, and no function may read a local name
    before binding it (a variable named like a builtin or a helper it calls: UnboundLocalError)."""
    try:
        tree = ast.parse(compile(source, f"<{backend}>", "exec", ast.PyCF_ONLY_AST))
    except SyntaxError as err:
        return f"{backend} source does not compile: {err}"
    outer = set(dir(builtins)) | {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    outer |= {a.asname or a.name.split(".")[0] for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))
              for a in n.names}
    outer |= set().union(*(_names(n, ast.Store) for n in tree.body if isinstance(n, ast.Assign)))
    for fn in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
        local = set().union(*(_names(st, ast.Store) for st in fn.body)) & outer
        bound = {a.arg for a in fn.args.args + fn.args.kwonlyargs}
        for st in fn.body:
            early = (_names(st, ast.Load) & local) - bound
            if early:
                return f"{backend} source: {fn.name}() reads {sorted(early)[0]!r} before assigning it"
            bound |= _names(st, ast.Store)
    return None


def run_case(case: Case, workdir: Path, seconds: float = CASE_SECONDS) -> Outcome:
    """Validate a case and generate its sources, under a time guard."""
    for old in workdir.iterdir():
        old.unlink()
    for name, text in case.files.items():
        (workdir / name).write_text(text, encoding="utf-8", errors="surrogatepass")
    spec_path = workdir / "spec.yaml"
    spec_path.write_text(case.text, encoding="utf-8", errors="surrogatepass")
    previous = signal.signal(signal.SIGALRM, _alarm), signal.signal(signal.SIGPROF, _alarm)
    signal.setitimer(signal.ITIMER_PROF, seconds)  # CPU time: other jobs on the machine do not count
    signal.setitimer(signal.ITIMER_REAL, max(WALL_SECONDS, seconds))
    try:
        model = dlspec.load(spec_path)
        for backend in ("torch", "keras"):
            try:
                source = dlspec.generate(model, backend)
            except UsageError as err:
                message = str(err)
                if "\n" in message or not message:
                    return Outcome("crash", f"UsageError not on one line: {message[:300]!r}")
                continue
            problem = check_source(source, backend)
            if problem:
                return Outcome("crash", problem)
        return Outcome("ok")
    except dlspec.SpecError as err:
        problem = check_message(str(err))
        return Outcome("crash", problem) if problem else Outcome("error")
    except Hang:
        return Outcome("hang", f"over {seconds} s")
    except Exception as err:  # noqa: BLE001  (any other exception is what the fuzzer looks for)
        return Outcome("crash", f"{type(err).__name__}: {str(err)[:300]}")
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous[0])
        signal.signal(signal.SIGPROF, previous[1])


def new_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="dlspec-fuzz-"))
