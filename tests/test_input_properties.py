"""Property tests for the parsers of untrusted input: whatever the file says, the reader returns a result or
raises the project's own error for that input, never an uncaught exception."""

from __future__ import annotations

import io
import json
from functools import partial

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from assets.campaigns.inputs import Reject as RecipientReject
from assets.campaigns.inputs import validate_recipients
from assets.catalog.packshot_intake import intake_packshots
from assets.catalog.rows import CatalogFileError, read_table, validate_catalog
from assets.catalog.sku_catalog import load_brand_kits
from resources.routing import PolicyError, RoutingPolicy, parse_policy
from resources.storage import StorageResource
from videokit.campaigns.spec import CampaignSpec, SpecError, check_columns, load_spec
from videokit.media.brand import BrandKit, BrandKitError
from videokit.training.script import ModuleScript, ScriptError, parse_script
from videokit.yaml_input import YamlDocument, YamlInputError, load_yaml

FAST = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow,
                                                                          HealthCheck.function_scoped_fixture])

KEYS = ["retakes", "default", "rules", "name", "when", "keyframe", "clip", "tier", "brands", "background", "style",
        "colors", "palette", "accent", "text", "logo_position", "display_name", "title", "voice", "presenter",
        "defaults", "template", "recipients", "slots", "kind", "box", "x", "y", "w", "h", "start_s", "end_s", "font",
        "output", "aspects", "id_column", "provider", "avatar", "theme", "words_per_minute", "video", "sku",
        "duration_s", "entrance", "column", "safe_area", "<<"]
WORDS = ["compose", "motion", "hero", "bulk", "#FFFFFF", "#12345", "studio", "solid", "16:9", "9:16", "heygen",
         "text", "image", "{first_name}", "{x.__class__}", "0", "-1", "1e999", ".nan", "~", "2001-13-45", "", "𝔘",
         "\x00", "=HYPERLINK()", "a" * 300, "top-left"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.sampled_from(WORDS),
                    st.text(max_size=20))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8), st.integers()), inner, max_size=5)),
    max_leaves=25)
yaml_texts = st.one_of(
    st.text(max_size=400),
    values.map(lambda v: yaml.safe_dump(v, allow_unicode=True)),
    st.lists(st.sampled_from(["a: &x [1, 2]", "b: *x", "c: [*x, *x]", "- 1", "k: {", "? [a]\n: b", "d: !!binary x",
                              "e: !!python/name:os.system", "f: &f {g: *f}", "<<: *x", "t: 2001-02-30", "  nested: 1",
                              "h: |\n  block", "dup: 1", "dup: 2", "%YAML 1.1", "---", "...", "\t: tab"]),
             max_size=8).map("\n".join),
)

ROUTING_PROVIDERS = {"keyframe": {"compose", "flux"}, "clip": {"motion", "wan", "runway"}}


def with_mutation(base: dict, path_choice: int, value) -> dict:
    """`base` with the value at one of its paths (chosen by index) replaced; keeps the rest of a good file."""
    paths: list[tuple] = []

    def walk(node, path):
        paths.append(path)
        if isinstance(node, dict):
            for key, child in node.items():
                walk(child, (*path, key))
        elif isinstance(node, list):
            for index, child in enumerate(node):
                walk(child, (*path, index))

    walk(base, ())
    path = paths[path_choice % len(paths)]
    copy = json.loads(json.dumps(base))
    if not path:
        return value
    target = copy
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return copy


@FAST
@given(yaml_texts)
def test_yaml_loader_gives_a_document_or_its_error(text):
    try:
        assert isinstance(load_yaml(text, source="in.yaml"), YamlDocument)
    except YamlInputError as error:
        assert str(error).startswith("in.yaml")


GOOD_POLICY = {"retakes": 1, "default": {"keyframe": ["compose"], "clip": ["motion"]},
               "rules": [{"name": "hero", "when": {"tier": "hero"}, "clip": ["runway", "motion"]}]}


@FAST
@given(st.one_of(yaml_texts, st.tuples(st.integers(0, 50), values).map(
    lambda c: yaml.safe_dump(with_mutation(GOOD_POLICY, *c)))))
def test_routing_policy_parses_or_names_the_problem(text):
    try:
        policy = parse_policy(text, source="routing.yaml", providers=ROUTING_PROVIDERS,
                              priced={"compose", "flux", "motion", "wan", "runway"})
    except PolicyError as error:
        assert str(error).startswith("routing.yaml")
        return
    assert isinstance(policy, RoutingPolicy)
    policy.route({"tier": "hero", "brand": "x"})


GOOD_KIT = {"display_name": "Acme", "background": {"style": "studio", "colors": ["#F4EFE8", "#D8CCBC"]},
            "palette": {"accent": "#1F4E5F", "text": "#1B1B1B"}, "logo_position": "top-left"}


@FAST
@given(st.one_of(values, st.tuples(st.integers(0, 30), values).map(lambda c: with_mutation(GOOD_KIT, *c))))
def test_brand_kit_entries_build_or_name_the_bad_key(entry):
    try:
        kit = BrandKit.from_dict("acme", entry)
    except BrandKitError as error:
        assert str(error).startswith("brand kit 'acme'")
        return
    assert isinstance(kit, BrandKit) and kit.logo is None or isinstance(kit.logo, str)


@FAST
@given(st.one_of(yaml_texts, st.tuples(st.integers(0, 30), values).map(
    lambda c: yaml.safe_dump({"brands": {"acme": with_mutation({k: v for k, v in GOOD_KIT.items()}, *c)}}))))
def test_brand_kit_files_load_or_name_the_file(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("kits") / "brands.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    if "logo:" in text:  # a logo is a read through the source policy, covered by its own tests
        return
    try:
        kits = load_brand_kits(str(path))
    except CatalogFileError as error:
        assert str(path) in str(error)
        return
    assert all(isinstance(kit, BrandKit) for kit, _, _ in kits.values())


GOOD_SPEC = {"template": {"video": "template.mp4"}, "recipients": "recipients.csv",
             "output": {"aspects": ["16:9", "1:1"]},
             "slots": [{"name": "greeting", "kind": "text", "text": "Hi {first_name}!", "start_s": 0.5, "end_s": 3.0,
                        "box": {"x": 0.1, "y": 0.3, "w": 0.8, "h": 0.25},
                        "font": {"min_size": 24, "max_size": 96, "max_lines": 2}}]}


@FAST
@given(st.one_of(yaml_texts, st.tuples(st.integers(0, 40), values).map(
    lambda c: yaml.safe_dump(with_mutation(GOOD_SPEC, *c)))))
def test_campaign_spec_loads_or_names_the_file(text):
    try:
        spec = load_spec(text, source="spring.yaml")
    except SpecError as error:
        assert all(line.startswith("spring.yaml") for line in str(error).splitlines())
        return
    assert isinstance(spec, CampaignSpec)


TEXT_SPEC = load_spec(yaml.safe_dump(GOOD_SPEC), source="spring.yaml")
cells = st.one_of(st.sampled_from(["R-1", "R-1", "ok", "", " ", "=1+1", "x" * 5000, "\x00", "Ünïcødé", "a\nb"]),
                  st.text(max_size=60))


@FAST
@given(st.lists(st.tuples(cells, cells), min_size=1, max_size=6))
def test_recipient_rows_become_recipients_or_rejects(rows):
    frame = pd.DataFrame(rows, columns=["recipient_id", "first_name"])
    check_columns(TEXT_SPEC, list(frame.columns), spec_source="spring.yaml", recipients_source="r.csv")
    accepted, rejects = validate_recipients(TEXT_SPEC, frame, "r.csv", {"16:9": (1280, 720), "1:1": (720, 720)})
    assert len(accepted) + len(rejects) == len(rows)
    assert all(isinstance(r, RecipientReject) and len(r.reason) <= 300 and len(r.recipient_id) <= 80 for r in rejects)


script_lines = st.sampled_from([
    "---", "title: Care", "voice: en", "presenter: {provider: heygen, avatar: A, voice: v}", "presenter: [1]",
    "defaults: {words_per_minute: 160}", "defaults: {words_per_minute: -5}", "title: &a [*a]", "## Scene",
    "## ", "# Title", "### deep", "slide: Caring", "image: images/label.png", "sku: SKU-1", "clip: a.mp4",
    "title: The label", "caption: Read it", "- bullet", "Hello there.", "", "<!-- note", "-->", "**bold", "`code",
    "[link](javascript:alert(1))", "pause: 2", "pause: x", "voice: " + "v" * 300])


@FAST
@given(st.one_of(st.text(max_size=400), st.lists(script_lines, max_size=25).map("\n".join)))
def test_training_script_parses_or_names_the_line(text):
    try:
        script = parse_script(text, source="module.md")
    except ScriptError as error:
        assert all(line.startswith("module.md:") for line in str(error).splitlines())
        return
    assert isinstance(script, ModuleScript)


@pytest.fixture(scope="module")
def packshot_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shots")
    buffer = io.BytesIO()
    Image.new("RGB", (128, 128), (200, 30, 30)).save(buffer, "PNG")
    (folder / "good.png").write_bytes(buffer.getvalue())
    return folder


HEADER = "sku_id,title,category,brand,image,tier,prompt,aspect"
catalog_cells = st.one_of(st.sampled_from(["A-1", "a-1", "Mug", "acme", "good.png", "hero", "bulk", "16:9", "1:1",
                                           "", "=cmd", "../good.png", "x" * 5000, '"', "a,b", "\x00", "missing.png"]),
                          st.text(max_size=30))


@FAST
@given(st.one_of(
    st.binary(max_size=300).map(lambda b: (b, "drop.csv")),
    st.binary(max_size=300).map(lambda b: (b, "drop.jsonl")),
    st.lists(st.lists(catalog_cells, min_size=6, max_size=9), max_size=5).map(
        lambda rows: ("\n".join([HEADER, *(",".join(r) for r in rows)]).encode("utf-8", "surrogatepass"), "drop.csv")),
    st.lists(st.dictionaries(st.sampled_from(HEADER.split(",") + ["extra"]), values, max_size=9), max_size=4).map(
        lambda rows: ("\n".join(json.dumps(r) for r in rows).encode(), "drop.jsonl")),
))
def test_catalog_rows_are_accepted_or_rejected_with_a_reason(packshot_folder, tmp_path_factory, file):
    data, name = file
    try:
        table = read_table(data, name)
    except CatalogFileError as error:
        assert name in str(error)
        return
    storage = StorageResource(root=str(tmp_path_factory.mktemp("data")))
    intake = partial(intake_packshots, base=str(packshot_folder), storage=storage, max_pixels=10_000_000)
    validated = validate_catalog(table, source=name, brand_fingerprints={"acme": "fp"}, check_images=intake)
    assert len(validated.accepted) + len({r.row for r in validated.rejects}) == len(table)
    assert all(r.reason and len(r.reason) <= 1000 and len(r.sku_id) <= 200 for r in validated.rejects)


def test_a_rule_condition_that_could_never_match_is_an_error():
    text = yaml.safe_dump({**GOOD_POLICY, "rules": [{"when": {"tier": {"is": "hero"}}, "clip": ["motion"]}]})
    with pytest.raises(PolicyError, match=r"routing.yaml line \d+, rules\[0\]\.when\.tier: expected a value or a list"):
        parse_policy(text, source="routing.yaml", providers=ROUTING_PROVIDERS, priced={"compose", "motion", "runway"})
