"""Module scripts: the format as written by hand, and errors that name the line and what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from videokit.training.script import ImageVisual, ScriptError, SkuVisual, Slide, parse_script

SAMPLES = Path(__file__).resolve().parents[3] / "samples" / "training"

GOOD = """---
# comments are fine in the front matter
title: Gear care
voice: en-gb
presenter: {provider: heygen, avatar: Anna-public, voice: v-123}
defaults:
  words_per_minute: 160
  theme: {accent: "#AA3300"}
---

# A document title above the scenes is allowed

## Welcome
slide: Caring for gear
- Clean **gently**
- Dry [fully](https://example.com/dry)

Hello there. This is `code`, *emphasis* and _more_.
<!-- a note for the author,
     over two lines -->
Still the first paragraph.

Second paragraph.

## Label
image: images/label.png
title: The label
caption: Read it first.

Narration about labels.

## Pack
sku: NW-BPK-001
presenter: hide

Narration about the pack.

## Plain scene
Note: a paragraph that starts like a directive but is not one stays narration.
"""


def test_a_hand_written_script_parses_into_scenes_with_lines():
    script = parse_script(GOOD, "good.md")
    assert script.title == "Gear care" and script.front.voice == "en-gb"
    assert script.front.presenter.provider == "heygen" and script.front.presenter.avatar == "Anna-public"
    assert script.front.defaults.words_per_minute == 160 and script.front.defaults.theme.accent == "#AA3300"
    welcome, label, pack, plain = script.scenes
    assert (welcome.title, welcome.line, welcome.visual_line) == ("Welcome", 13, 14)
    assert welcome.visual == Slide("Caring for gear", ("Clean gently", "Dry fully"))
    assert welcome.narration == (
        "Hello there. This is code, emphasis and more. Still the first paragraph.\n\nSecond paragraph."
    )
    assert label.visual == ImageVisual("images/label.png", "The label") and label.caption == "Read it first."
    assert label.caption_text == "Read it first." and welcome.caption_text == welcome.narration
    assert pack.visual == SkuVisual("NW-BPK-001") and pack.show_presenter is False
    assert plain.visual == Slide("Plain scene") and plain.narration.startswith("Note: a paragraph")
    assert script.line_of("defaults.words_per_minute") == 7


def test_the_sample_modules_parse():
    care = parse_script((SAMPLES / "product-care.md").read_text(), "product-care.md")
    assert 12 <= len(care.scenes) <= 15 and 1400 <= care.words <= 1500
    kinds = [type(scene.visual).__name__ for scene in care.scenes]
    assert kinds.count("SkuVisual") == 1 and 1 <= kinds.count("ImageVisual") <= 2
    assert kinds.count("Slide") >= 10
    quick = parse_script((SAMPLES / "quick-start.md").read_text(), "quick-start.md")
    assert len(quick.scenes) == 3 and quick.front.presenter.provider == "heygen"


def scene_errors(body: str, front: str = "title: T") -> str:
    with pytest.raises(ScriptError) as raised:
        parse_script(f"---\n{front}\n---\n{body}", "bad.md")
    return str(raised.value)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("## A\nslide: x\nimage: a.png\n\nText.\n", "bad.md:6: a scene has one visual; 'slide' on line 5"),
        ("## A\nvideo: x.mp4\ncaption: c\n\nText.\n", "bad.md:5: unknown directive 'video'"),
        ("## A\nslide: x\n\nText.\n\ncaption: late\n", "bad.md:9: directive 'caption' after narration"),
        ("## A\n- loose bullet\ncaption: c\n\nText.\n", "bad.md:5: bullets belong to a slide"),
        ("## A\nsku: not a sku!\n\nText.\n", "bad.md:5: sku: 'not a sku!' is not a SKU id"),
        ("## A\nslide: x\n", "bad.md:4: scene 'A' has no narration"),
        ("## A\npresenter: maybe\n\nText.\n", "bad.md:5: presenter: 'maybe' is not 'show' or 'hide'"),
        ("## A\nslide: x\ntitle: y\n\nText.\n", "bad.md:6: title: goes with image: or sku:"),
        ("## A\nimage:\n\nText.\n", "bad.md:5: image: needs a path or URI"),
        ("Intro text.\n## A\n\nText.\n", "bad.md:4: text before the first scene"),
        ("## A\n\nText.\n\n### Sub\n\nMore.\n", "bad.md:8: only '## ' headings start scenes"),
        ("## A\n\nText.\n\n## a\n\nMore.\n", "bad.md:8: scene title 'a' is used twice (first on line 4)"),
        ("\n\n", "bad.md:4: the script has no scenes"),
    ],
)
def test_scene_errors_name_the_line(body, expected):
    assert expected in scene_errors(body)


@pytest.mark.parametrize(
    ("front", "expected"),
    [
        ("title: T\npresenter: zoom", "bad.md:3: presenter.provider: unknown presenter 'zoom'"),
        (
            "title: T\ndefaults:\n  words_per_minute: 10",
            "bad.md:4: defaults.words_per_minute: Input should be",
        ),
        ("title: T\ndefaults:\n  colour: red", "bad.md:4: defaults.colour: unknown key"),
        ("voice: en", "bad.md:1: title: required key is missing"),
        ("title: [unclosed", "bad.md:2: front matter is not valid YAML"),
        (
            "title: T\ndefaults:\n  theme: {accent: red}",
            "bad.md:4: defaults.theme.accent: String should match",
        ),
    ],
)
def test_front_matter_errors_name_the_line(front, expected):
    assert expected in scene_errors("## A\n\nText.\n", front)


def test_every_problem_is_reported_at_once_in_line_order():
    message = scene_errors(
        "## A\nslide: x\nimage: y\n\nText.\n\n## B\nsku: ?\n\nMore.\n", "title: T\nvoice: 3"
    )
    lines = message.splitlines()
    assert [line.split(":")[1] for line in lines] == ["3", "7", "12"]


def test_a_script_without_front_matter_says_how_to_start():
    with pytest.raises(ScriptError, match=r"bad.md:1: a script starts with a front matter block"):
        parse_script("## A\n\nText.\n", "bad.md")
    with pytest.raises(ScriptError, match=r"bad.md:1: the front matter opened here is never closed"):
        parse_script("---\ntitle: T\n## A\n\nText.\n", "bad.md")
