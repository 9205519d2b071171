"""Training module scripts: Markdown that people write by hand, parsed into scenes with line numbers.

A script is a YAML front matter block between `---` lines, then one `## Scene title` section per scene:

    ---
    title: Caring for your outdoor gear     # required: the module's title (poster, metadata)
    voice: en-us                            # espeak-ng voice of narrated scenes (`espeak-ng --voices`)
    presenter: none                         # none | heygen | did, or a mapping:
    #   presenter: {provider: heygen, avatar: Daisy-inskirt-20220818, voice: 2d5b0e6cf36f460aa7fc47e3eee4ba54}
    defaults:                               # all optional
      words_per_minute: 150                 # speaking rate of narrated scenes
      lead_in_s: 0.4                        # silence before each scene's narration
      tail_s: 0.8                           # silence after it
      theme: {background: "#F5F2EB", text: "#1E2A32", accent: "#2F6F5E"}
    ---

    ## Welcome
    slide: Caring for your outdoor gear
    - Clean, dry, store
    - Ten minutes a month

    First narration paragraph. Each scene lasts as long as its narration takes to say.

    Second paragraph.

    ## Read the care label
    image: images/care-label.png
    caption: Read the care label before you wash anything.

    Narration...

    ## Meet the Ridgeline daypack
    sku: NW-BPK-001
    presenter: hide

    Narration...

The lines right under a scene heading, up to the first blank line, are the scene's directives when the first
of them starts with a directive key:

- `slide: <title>` then `- bullet` lines: a slide, its title and bullets fitted to the frame (title empty:
  the scene title). A scene with no visual directive is a slide with the scene title.
- `image: <path or URI>`: a picture (path relative to the script, s3:// or https://); `title:` adds a heading.
- `sku: <sku_id>`: the SKU's published clip, looped; `title:` overrides the product title shown with it.
- `caption: <text>`: on-screen captions for the scene instead of the narration text.
- `presenter: show | hide`: with a presenter, whether this scene shows the talking head (its voice narrates
  every scene either way, so the module keeps one voice).

Everything after the directives is narration: paragraphs of plain text (Markdown emphasis, code and links are
reduced to their words). HTML comments (`<!-- ... -->`) are ignored anywhere. Errors name the line.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from videokit.yaml_input import YamlInputError, load_yaml

SKU_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MODULE_PATTERN = SKU_PATTERN
PRESENTER_PROVIDERS = ("none", "heygen", "did")
DIRECTIVES = ("slide", "image", "sku", "caption", "presenter", "title")
VISUAL_DIRECTIVES = ("slide", "image", "sku")
_DIRECTIVE_LINE = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_-]*)\s*:(?:\s+(?P<value>.*?))?\s*$")
_BULLET = re.compile(r"^\s*[-*]\s+(?P<text>.+?)\s*$")
_HEADING = re.compile(r"^(?P<marks>#{1,6})(?:\s+(?P<text>.*?))?\s*#*\s*$")
_COLOR = r"^#[0-9a-fA-F]{6}$"
COMMENT = "\x00"
_SHOW = {
    "show": True,
    "yes": True,
    "on": True,
    "true": True,
    "hide": False,
    "no": False,
    "off": False,
    "false": False,
}


class ScriptError(ValueError):
    """What is wrong with a script, one problem per line, each as `source:line: message`."""

    def __init__(self, source: str, problems: list[tuple[int, str]]):
        self.source = source
        self.problems = sorted(problems)
        super().__init__("\n".join(f"{source}:{line}: {message}" for line, message in self.problems))


# --------------------------------------------------------------------------- what a script says


@dataclass(frozen=True)
class Slide:
    title: str
    bullets: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImageVisual:
    uri: str
    title: str | None = None


@dataclass(frozen=True)
class SkuVisual:
    sku_id: str
    title: str | None = None


Visual = Slide | ImageVisual | SkuVisual


@dataclass(frozen=True)
class Scene:
    index: int  # 0-based position in the module
    title: str
    line: int  # line of the `## ` heading
    narration: str  # plain text, paragraphs separated by a blank line
    visual: Visual
    visual_line: int
    caption: str | None = None
    show_presenter: bool = True

    @property
    def caption_text(self) -> str:
        return self.caption if self.caption is not None else self.narration

    @property
    def words(self) -> int:
        return len(self.narration.split())


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Theme(_Strict):
    background: str = Field(default="#F5F2EB", pattern=_COLOR)
    background_2: str = Field(default="#E6E0D4", pattern=_COLOR, description="second gradient colour")
    text: str = Field(default="#1E2A32", pattern=_COLOR)
    accent: str = Field(default="#2F6F5E", pattern=_COLOR)


class Defaults(_Strict):
    words_per_minute: int = Field(default=150, ge=80, le=400)
    lead_in_s: float = Field(default=0.4, ge=0.1, le=3.0)
    tail_s: float = Field(default=0.8, ge=0.1, le=5.0)
    theme: Theme = Theme()


class PresenterSpec(_Strict):
    provider: Literal["none", "heygen", "did"] = "none"
    avatar: str | None = Field(
        default=None, min_length=1, description="HeyGen avatar_id or D-ID source image URL"
    )
    voice: str | None = Field(default=None, min_length=1, description="the provider's voice id")

    @property
    def enabled(self) -> bool:
        return self.provider != "none"


class FrontMatter(_Strict):
    title: str = Field(min_length=1)
    voice: str = Field(default="en-us", min_length=1)
    presenter: PresenterSpec = PresenterSpec()
    defaults: Defaults = Defaults()

    @field_validator("presenter", mode="before")
    @classmethod
    def _presenter_by_name(cls, value: Any) -> Any:
        if value is None or value is False:
            return {"provider": "none"}
        if isinstance(value, str):
            return {"provider": value.strip().lower()}
        return value

    @field_validator("title", "voice")
    @classmethod
    def _stripped(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


@dataclass(frozen=True)
class ModuleScript:
    source: str
    front: FrontMatter
    scenes: tuple[Scene, ...]
    lines: dict[str, int] = field(default_factory=dict, compare=False)  # front matter key path -> line

    @property
    def title(self) -> str:
        return self.front.title

    @property
    def words(self) -> int:
        return sum(scene.words for scene in self.scenes)

    def line_of(self, path: str) -> int:
        """Line of a front matter key such as `voice` or `presenter.provider` (1 when unknown)."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path.rpartition(".")[0]
        return 1

    def fingerprint(self) -> str:
        data = {"front": self.front.model_dump(), "scenes": [asdict(scene) for scene in self.scenes]}
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- parsing


def parse_script(text: str, source: str = "<script>") -> ModuleScript:
    """Parse a module script; raises ScriptError listing every problem found with its line."""
    lines = _without_comments(text.replace("\r\n", "\n").replace("\r", "\n"))
    problems: list[tuple[int, str]] = []
    front, key_lines, body_start = _front_matter(lines, problems)
    scenes, sections = _scenes(lines, body_start, problems)
    if front is not None and not sections:
        problems.append(
            (body_start, "the script has no scenes; start each scene with a '## Scene title' line")
        )
    if problems:
        raise ScriptError(source, problems)
    return ModuleScript(source=source, front=front, scenes=tuple(scenes), lines=key_lines)


def _without_comments(text: str) -> list[str]:
    """The lines with HTML comments taken out. A line that held only a comment becomes COMMENT, which neither
    counts as text nor ends a paragraph; every line keeps its number."""
    marked = re.sub(
        r"<!--.*?-->",
        lambda match: "\n".join([COMMENT] * (match.group(0).count("\n") + 1)),
        text,
        flags=re.DOTALL,
    )
    return [COMMENT if line.strip() == COMMENT else line.replace(COMMENT, "") for line in marked.split("\n")]


def _front_matter(lines: list[str], problems: list[tuple[int, str]]) -> tuple[FrontMatter | None, dict, int]:
    """The parsed front matter, its key lines, and the 1-based line where the body starts."""
    first = next((index for index, line in enumerate(lines) if line.strip() and line != COMMENT), None)
    if first is None:
        problems.append((1, "the script is empty"))
        return None, {}, 1
    if lines[first].strip() != "---":
        problems.append(
            (
                first + 1,
                (
                    "a script starts with a front matter block between '---' lines "
                    "(title, voice, presenter, defaults)"
                ),
            )
        )
        return None, {}, first + 2
    end = next((index for index in range(first + 1, len(lines)) if lines[index].strip() == "---"), None)
    if end is None:
        problems.append((first + 1, "the front matter opened here is never closed with a '---' line"))
        return None, {}, len(lines)
    offset = first + 1  # 0-based index of the first YAML line
    yaml_text = "\n".join("" if line == COMMENT else line for line in lines[offset:end])
    try:
        document = load_yaml(yaml_text, source="front matter", first_line=offset + 1)
    except YamlInputError as error:
        joiner = " is " if error.reason.startswith("not valid YAML") else ": "
        problems.append((error.line or first + 1, f"front matter{joiner}{error.reason}"))
        return None, {}, end + 2
    data = document.data
    key_lines = {".".join(path): line for path, line in document.lines.items()
                 if path and all(isinstance(part, str) for part in path)}
    if not isinstance(data, dict):
        problems.append((first + 1, "the front matter must be a mapping of keys (title: ..., voice: ...)"))
        return None, key_lines, end + 2
    try:
        front = FrontMatter.model_validate(data)
    except ValidationError as error:
        for issue in error.errors():
            path = ".".join(str(part) for part in issue["loc"] if not str(part).startswith("function-"))
            path = path.replace(".str", "").replace(".PresenterSpec", "")
            line = _line_for(path, key_lines, first + 1)
            shown = path if path.isprintable() and len(path) <= 120 else repr(path[:120])
            problems.append((line, f"{shown or 'front matter'}: {_pydantic_message(issue)}"))
        return None, key_lines, end + 2
    return front, key_lines, end + 2


def _pydantic_message(issue: dict) -> str:
    if issue["type"] == "extra_forbidden":
        return "unknown key"
    if issue["type"] == "missing":
        return "required key is missing"
    if issue["type"] == "literal_error" and "provider" in str(issue["loc"]):
        return f"unknown presenter {issue.get('input')!r}; use one of {', '.join(PRESENTER_PROVIDERS)}"
    return issue["msg"].removeprefix("Value error, ")


def _line_for(path: str, key_lines: dict[str, int], default: int) -> int:
    while path:
        if path in key_lines:
            return key_lines[path]
        path = path.rpartition(".")[0]
    return default


def _scenes(lines: list[str], body_start: int, problems: list[tuple[int, str]]) -> tuple[list[Scene], int]:
    """Split the body at `## ` headings and parse each section; returns the scenes that parsed and the number
    of sections."""
    sections: list[tuple[int, str, list[tuple[int, str]]]] = []
    for number in range(body_start, len(lines) + 1):
        raw = lines[number - 1]
        heading = _HEADING.match(raw.strip()) if raw.strip().startswith("#") else None
        if heading and len(heading.group("marks")) == 2:
            title = (heading.group("text") or "").strip()
            if not title:
                problems.append((number, "scene heading has no title ('## Scene title')"))
            sections.append((number, title, []))
        elif heading and len(heading.group("marks")) == 1 and not sections:
            continue  # a document title above the first scene; the front matter's title is the module's
        elif heading:
            problems.append(
                (
                    number,
                    (
                        f"only '## ' headings start scenes; '{heading.group('marks')}' headings are "
                        "not part of the format (write the text as narration)"
                    ),
                )
            )
        elif sections:
            sections[-1][2].append((number, raw))
        elif raw.strip() and raw != COMMENT:
            problems.append(
                (number, "text before the first scene; every scene starts with a '## Scene title' line")
            )
    scenes: list[Scene] = []
    seen: dict[str, int] = {}
    for index, (line, title, body) in enumerate(sections):
        if title:
            key = title.casefold()
            if key in seen:
                problems.append(
                    (
                        line,
                        (
                            f"scene title {title!r} is used twice (first on line {seen[key]}); "
                            "chapter titles must be unique"
                        ),
                    )
                )
            seen.setdefault(key, line)
        scene = _scene(index, line, title, body, problems)
        if scene is not None:
            scenes.append(scene)
    return scenes, len(sections)


def _paragraphs(body: list[tuple[int, str]]) -> list[list[tuple[int, str]]]:
    blocks: list[list[tuple[int, str]]] = []
    current: list[tuple[int, str]] = []
    for number, raw in body:
        if raw == COMMENT:
            continue
        if raw.strip():
            current.append((number, raw))
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks


def _is_directive(raw: str) -> bool:
    match = _DIRECTIVE_LINE.match(raw.strip())
    return bool(match) and match.group("key").lower() in DIRECTIVES


def _scene(
    index: int, line: int, title: str, body: list[tuple[int, str]], problems: list[tuple[int, str]]
) -> Scene | None:
    blocks = _paragraphs(body)
    # The first block holds directives when any of its lines is one (a narration paragraph that happens to
    # start with "Note:" stays narration).
    directives = blocks.pop(0) if blocks and any(_is_directive(raw) for _, raw in blocks[0]) else []
    before = len(problems)
    values: dict[str, tuple[int, str]] = {}
    bullets: list[str] = []
    for number, raw in directives:
        bullet = _BULLET.match(raw)
        if bullet:
            if "slide" not in values:
                problems.append((number, "bullets belong to a slide: put them under a 'slide:' line"))
            bullets.append(_plain(bullet.group("text")))
            continue
        match = _DIRECTIVE_LINE.match(raw.strip())
        if not match:
            problems.append(
                (
                    number,
                    (
                        "a directive block holds 'key: value' lines and '- bullet' lines only; "
                        "leave a blank line before the narration"
                    ),
                )
            )
            continue
        key, value = match.group("key").lower(), (match.group("value") or "").strip()
        if key not in DIRECTIVES:
            problems.append((number, f"unknown directive {key!r}; known: {', '.join(DIRECTIVES)}"))
        elif key in values:
            problems.append(
                (number, f"{key!r} is given twice in this scene (first on line {values[key][0]})")
            )
        elif key in VISUAL_DIRECTIVES and (
            other := next((k for k in VISUAL_DIRECTIVES if k in values), None)
        ):
            problems.append(
                (
                    number,
                    (
                        f"a scene has one visual; {other!r} on line {values[other][0]} already "
                        f"sets it, so {key!r} cannot"
                    ),
                )
            )
        else:
            values[key] = (number, value)
    for block in blocks:
        number, raw = block[0]
        if _is_directive(raw) and _DIRECTIVE_LINE.match(raw.strip()).group("key").lower() != "title":
            key = _DIRECTIVE_LINE.match(raw.strip()).group("key").lower()
            problems.append(
                (
                    number,
                    (
                        f"directive {key!r} after narration; directives go right under the "
                        "scene heading, before the first blank line"
                    ),
                )
            )
    narration = "\n\n".join(
        _plain(" ".join(raw.strip().removeprefix(">").strip() for _, raw in block)) for block in blocks
    )
    if not narration.strip():
        problems.append(
            (
                line,
                (
                    f"scene {title or index + 1!r} has no narration; write at least one paragraph "
                    "after the directives (a blank line ends the directives)"
                ),
            )
        )
    visual, visual_line = _visual(title, values, bullets, line, problems)
    caption = values.get("caption")
    if caption is not None and not caption[1]:
        problems.append((caption[0], "caption: is empty; remove the line to caption the narration"))
    show = True
    if "presenter" in values:
        number, value = values["presenter"]
        if value.lower() not in _SHOW:
            problems.append((number, f"presenter: {value!r} is not 'show' or 'hide'"))
        else:
            show = _SHOW[value.lower()]
    if "title" in values and isinstance(visual, Slide):
        problems.append(
            (
                values["title"][0],
                ("title: goes with image: or sku:; a slide takes its title on the 'slide:' line"),
            )
        )
    if len(problems) > before:
        return None
    return Scene(
        index=index,
        title=title,
        line=line,
        narration=narration,
        visual=visual,
        visual_line=visual_line,
        caption=_plain(caption[1]) if caption else None,
        show_presenter=show,
    )


def _visual(
    title: str,
    values: dict[str, tuple[int, str]],
    bullets: list[str],
    line: int,
    problems: list[tuple[int, str]],
) -> tuple[Visual, int]:
    heading = values.get("title", (0, ""))[1] or None
    if "image" in values:
        number, uri = values["image"]
        if not uri:
            problems.append((number, "image: needs a path or URI (images/label.png, s3://..., https://...)"))
        return ImageVisual(uri=uri, title=_plain(heading) if heading else None), number
    if "sku" in values:
        number, sku_id = values["sku"]
        if not SKU_PATTERN.match(sku_id):
            problems.append((number, f"sku: {sku_id!r} is not a SKU id ([A-Za-z0-9_-], 1 to 64 characters)"))
        return SkuVisual(sku_id=sku_id, title=_plain(heading) if heading else None), number
    if "slide" in values:
        number, slide_title = values["slide"]
        return Slide(title=_plain(slide_title) or title, bullets=tuple(bullets)), number
    return Slide(title=title), line


def _plain(text: str) -> str:
    """Markdown inline markup reduced to its words: images dropped, links to their text, emphasis and code
    marks removed."""
    text = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"`([^`]*)`", r"\1", text)
    text = re.sub(r"(\*\*|__)(.+?)\1", r"\2", text)
    text = re.sub(r"(?<![\w*])[*_](?!\s)(.+?)(?<!\s)[*_](?![\w*])", r"\1", text)
    return re.sub(r"[ \t]+", " ", text).strip()
