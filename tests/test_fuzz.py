"""Fuzzing in CI: a seeded budget of 2,700 mutated specs (bench/fuzz.py runs 100,000, docs/reliability.md).

Every case either validates (and its torch and Keras sources compile, with no name read before it is
bound) or raises a located SpecError, one line per problem; each finishes under fuzzlib's time guard.
"""

import shutil

import fuzzlib
import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

CORPUS = fuzzlib.seeds()


def budget(cases: int):
    """Seeded (derandomized), no example database, no per-example deadline: fuzzlib's guard bounds a case."""
    return settings(max_examples=cases, derandomize=True, database=None, deadline=None, print_blob=True,
                    suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def workdir():
    path = fuzzlib.new_workdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _expect_clean(case: fuzzlib.Case, workdir):
    outcome = fuzzlib.run_case(case, workdir)
    assert outcome.status in ("ok", "error"), f"{outcome.status}: {outcome.detail}\n--- spec ---\n{case.text[:3000]}"
    return outcome.status


def test_corpus_holds_the_zoo_and_the_docs_examples():
    names = [name for name, _ in CORPUS]
    assert {"mnist_mlp.yaml", "resnet50.yaml", "text_transformer.yaml"} <= set(names)
    assert sum(name.startswith("docs-") for name in names) >= 30


@budget(900)
@given(st.data())
def test_mutated_spec_data_validates_or_gives_located_errors(workdir, data):
    src = fuzzlib.Source(data=data)
    name, text = src.choice(CORPUS)
    mutated = fuzzlib.mutate_data(yaml.safe_load(text), src, 1 + src.below(4))
    _expect_clean(fuzzlib.Case("data", name, fuzzlib.render(mutated, src)), workdir)


@budget(1200)
@given(st.data())
def test_mutated_spec_text_validates_or_gives_located_errors(workdir, data):
    src = fuzzlib.Source(data=data)
    name, text = src.choice(CORPUS)
    _expect_clean(fuzzlib.Case("text", name, fuzzlib.mutate_text(text, src, 1 + src.below(4))), workdir)


@budget(500)
@given(st.data())
def test_derived_specs_validate_or_give_located_errors(workdir, data):
    src = fuzzlib.Source(data=data)
    name, text = src.choice(CORPUS)
    spec, files = fuzzlib.derived(text, src)
    _expect_clean(fuzzlib.Case("derived", name, spec, files), workdir)


@budget(100)
@given(st.data())
def test_renamed_models_generate_valid_sources(workdir, data):
    src = fuzzlib.Source(data=data)
    name, text = src.choice(CORPUS[:9])  # the zoo: every seed validates
    spec = yaml.safe_load(text)
    layers = [v for _, v in fuzzlib._paths(spec) if isinstance(v, dict) and "type" in v]
    src.choice(layers)["name"] = src.choice(fuzzlib.VALID_NAMES)
    spec["name"] = src.choice(fuzzlib.VALID_NAMES)
    _expect_clean(fuzzlib.Case("rename", name, fuzzlib.render(spec, src)), workdir)


def test_the_oracle_catches_what_the_fuzzer_looks_for(workdir):
    fine = "dlspec: 1\nname: m\ninputs:\n  x: {shape: [4]}\nlayers:\n  - {type: dense, units: 2}\n"
    assert fuzzlib.run_case(fuzzlib.Case("x", "x", fine), workdir).status == "ok"
    assert fuzzlib.check_message("f.yaml:1:1: rule. Received: 1\nf.yaml:2:3: other. Received: 2") is None
    assert fuzzlib.check_message("invalid YAML\n  in \"<unicode string>\", position 3") is not None
    assert fuzzlib.check_source("def f():\n    y = TorchPool()\n    TorchPool = y\n\n\nclass TorchPool:\n    pass\n",
                                "keras") == "keras source: f() reads 'TorchPool' before assigning it"
    assert fuzzlib.check_source("class None(object): pass\n", "torch").startswith("torch source does not compile")
