"""Every YAML input (routing policy, brand kits, campaign spec, training front matter) goes through one bounded
loader: alias bombs, deep nesting, recursive aliases and oversized files fail fast with the file named, and
unknown keys are reported with their file and line."""

import time

import pytest

from assets.catalog.rows import CatalogFileError
from assets.catalog.sku_catalog import load_brand_kits
from resources.pricing import PriceTable, PriceTableError
from resources.routing import PolicyError, parse_policy
from videokit.campaigns.spec import SpecError, load_spec
from videokit.training.script import ScriptError, parse_script
from videokit.yaml_input import MAX_BYTES, YamlInputError, load_yaml

# About 400 bytes that a plain safe_load turns into 9**8 (43 million) references once walked.
LAUGHS = "\n".join(
    [' a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f" {b}: &{b} [{','.join([f'*{a}'] * 9)}]" for a, b in zip("abcdefg", "bcdefgh")]
)
PROVIDERS = {"keyframe": {"compose"}, "clip": {"motion"}}


def routing(text: str):
    return parse_policy(text, source="routing.yaml", providers=PROVIDERS, priced={"compose", "motion"})


def brand_kits(tmp_path, text: str):
    path = tmp_path / "brands.yaml"
    path.write_text(text)
    return load_brand_kits(str(path))


def front_matter(text: str):
    return parse_script(f"---\n{text}\n---\n\n## Scene\nHello.\n", source="module.md")


def spec(text: str):
    return load_spec(text, source="spring.yaml")


def bombs() -> dict[str, str]:
    return {
        "routing.yaml": f"default:\n  keyframe: [compose]\n  clip: [motion]\nlaughs:\n{LAUGHS}\n",
        "brands.yaml": "brands:\n  acme:\n    background: {colors: ['#FFFFFF']}\n    palette:\n"
                       + LAUGHS.replace("\n ", "\n     ").replace(" a:", "     a:", 1) + "\n",
        "spring.yaml": f"template: {{video: t.mp4}}\nrecipients: r.csv\nslots:\n{LAUGHS}\n",
        "module.md": f"title: T\nvoice: en\ndefaults:\n{LAUGHS}",
    }


@pytest.mark.parametrize("name", ["routing.yaml", "brands.yaml", "spring.yaml", "module.md"])
def test_alias_bomb_fails_fast_naming_the_file(tmp_path, name):
    text = bombs()[name]
    assert len(text) < 520
    readers = {"routing.yaml": (routing, PolicyError), "spring.yaml": (spec, SpecError),
               "module.md": (front_matter, ScriptError),
               "brands.yaml": (lambda t: brand_kits(tmp_path, t), CatalogFileError)}
    read, error_type = readers[name]
    started = time.perf_counter()
    with pytest.raises(error_type) as caught:
        read(text)
    assert time.perf_counter() - started < 1.0
    assert name in str(caught.value) and "expands to more than" in str(caught.value)


def test_deep_nesting_recursive_aliases_and_size_are_refused():
    with pytest.raises(YamlInputError, match=r"deep.yaml line 1: nested deeper than 32 levels"):
        load_yaml("[" * 100_000, source="deep.yaml")
    with pytest.raises(YamlInputError, match=r"loop.yaml line 1: an alias refers to a node that contains it"):
        load_yaml("a: &a [1, *a]", source="loop.yaml")
    chained = "a: &a " + "[" * 20 + "]" * 20 + "\nb: &b " + "[" * 20 + "*a" + "]" * 20 + "\n"
    with pytest.raises(YamlInputError, match=r"once aliases are followed"):
        load_yaml(chained, source="chain.yaml")
    with pytest.raises(YamlInputError, match=r"big.yaml: is \d+ bytes, more than"):
        load_yaml("a: " + "x" * MAX_BYTES, source="big.yaml")
    with pytest.raises(YamlInputError, match=r"dup.yaml line 3: duplicate key 'a'"):
        load_yaml("a: 1\nb: 2\na: 3\n", source="dup.yaml")
    with pytest.raises(YamlInputError, match=r"tag.yaml line 1: not valid YAML: could not determine a constructor"):
        load_yaml("a: !!python/object/apply:os.system [id]", source="tag.yaml")


def test_small_aliases_and_merge_keys_still_load():
    document = load_yaml("base: &base {x: 1}\nitem:\n  <<: *base\n  y: 2\nlist: [*base, *base]\n", source="ok.yaml")
    assert document.data["item"] == {"x": 1, "y": 2}
    assert document.line_of(("item", "y")) == 4 and document.line_of(("list", 1, "x")) == 1


def test_unknown_keys_name_file_and_line(tmp_path):
    with pytest.raises(PolicyError, match=r"routing.yaml line 4, colour: unknown key"):
        routing("default:\n  keyframe: [compose]\n  clip: [motion]\ncolour: red\n")
    good_kit = "brands:\n  acme:\n    background: {colors: ['#FFFFFF']}\n"
    with pytest.raises(CatalogFileError, match=r"brands.yaml line 4: brand kit 'acme': colour: unknown key"):
        brand_kits(tmp_path, good_kit + "    colour: red\n")
    with pytest.raises(CatalogFileError, match=r"brands.yaml line 5: brand kit 'acme': palette.accnt: unknown key"):
        brand_kits(tmp_path, good_kit + "    palette:\n      accnt: '#000000'\n")
    with pytest.raises(CatalogFileError, match=r"brands.yaml line 4: colours: unknown key \(expected brands\)"):
        brand_kits(tmp_path, good_kit + "colours: {}\n")
    with pytest.raises(SpecError, match=r"spring.yaml: slots\[0\].colour: unknown key \(line 5\)"):
        spec("template: {video: t.mp4}\nrecipients: r.csv\nslots:\n  - {name: a, kind: text, text: Hi, start_s: 0,"
             " end_s: 1,\n     box: {x: 0.1, y: 0.1, w: 0.5, h: 0.2}, colour: red}\n")
    with pytest.raises(ScriptError, match=r"module.md:4: presenterr: unknown key"):
        front_matter("title: T\nvoice: en\npresenterr: x")


def test_price_table_refuses_a_bomb_with_its_file_and_line():
    started = time.perf_counter()
    with pytest.raises(PriceTableError, match=r"prices.yaml line 7: expands to more than"):
        PriceTable.from_yaml(f"as_of: '2026-11-01'\nlaughs:\n{LAUGHS}\n", source="prices.yaml")
    assert time.perf_counter() - started < 1.0
