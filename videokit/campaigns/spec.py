"""The campaign spec: one YAML file that says which template, which recipients and what goes where.

Errors name the file, the key path (`slots[0].box.w`) and what is wrong, all at once, so a marketer can fix
the file in one pass. Boxes are relative (0..1) to the output frame, so one slot maps onto every aspect;
a slot may override its box per aspect.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from videokit.yaml_input import YamlInputError, load_yaml

Aspect = Literal["16:9", "9:16", "1:1"]
ASPECT_RATIOS: dict[str, tuple[int, int]] = {"16:9": (16, 9), "9:16": (9, 16), "1:1": (1, 1)}
NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_COLOR = re.compile(r"^#([0-9a-fA-F]{6})([0-9a-fA-F]{2})?$")

RGBA = tuple[int, int, int, int]


class SpecError(ValueError):
    """The spec (or its fit with the recipients file) is wrong; one line per problem, each with its key path."""

    def __init__(self, source: str, problems: list[tuple[str, str]], lines: dict[str, int] | None = None):
        self.source = source
        self.problems = problems
        lines = lines or {}

        def where(path: str) -> str:
            return f" (line {lines[path]})" if path in lines else ""

        super().__init__("\n".join(f"{source}: {path}: {message}{where(path)}" if path else f"{source}: {message}"
                                   for path, message in problems))


def parse_color(value: str) -> RGBA:
    match = _COLOR.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not a colour like '#FFFFFF' or '#00000080'")
    digits, alpha = match.group(1), match.group(2) or "ff"
    return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16), int(alpha, 16))


Color = Annotated[str, Field(pattern=_COLOR.pattern, description="#RRGGBB or #RRGGBBAA")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Box(Strict):
    """A rectangle in relative frame coordinates: 0..1 from the left and top edges."""

    x: float = Field(ge=0, le=1)
    y: float = Field(ge=0, le=1)
    w: float = Field(gt=0, le=1)
    h: float = Field(gt=0, le=1)

    @model_validator(mode="after")
    def _inside_frame(self) -> Box:
        if self.x + self.w > 1 + 1e-9 or self.y + self.h > 1 + 1e-9:
            raise ValueError(f"box reaches past the frame (x + w = {self.x + self.w:g}, y + h = {self.y + self.h:g})")
        return self

    def pixels(self, size: tuple[int, int]) -> tuple[int, int, int, int]:
        """(x, y, w, h) in pixels, all even so chroma samples line up with luma."""
        width, height = size
        x0, y0 = 2 * round(self.x * width / 2), 2 * round(self.y * height / 2)
        x1, y1 = 2 * round((self.x + self.w) * width / 2), 2 * round((self.y + self.h) * height / 2)
        return x0, y0, max(2, x1 - x0), max(2, y1 - y0)


class SafeArea(Strict):
    """Margins, as fractions of the frame, that every slot box must stay inside (title-safe area)."""

    left: float = Field(default=0.05, ge=0, lt=0.5)
    top: float = Field(default=0.05, ge=0, lt=0.5)
    right: float = Field(default=0.05, ge=0, lt=0.5)
    bottom: float = Field(default=0.05, ge=0, lt=0.5)


class Entrance(Strict):
    kind: Literal["none", "fade", "slide"] = "fade"
    duration_s: float = Field(default=0.4, ge=0, le=5)
    # slide: the side the overlay comes in from; it also fades in over the same time
    side: Literal["left", "right", "top", "bottom"] = "bottom"


class Font(Strict):
    bold: bool = True
    min_size: int = Field(default=20, ge=6, le=400, description="smallest size in pixels before the row is rejected")
    max_size: int = Field(default=72, ge=6, le=400)
    max_lines: int = Field(default=2, ge=1, le=8)
    line_spacing: float = Field(default=1.15, ge=0.8, le=3)
    color: Color = "#FFFFFF"
    shadow: bool = Field(default=True, description="soft dark shadow under the text, for legibility")


class SlotBase(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    start_s: float = Field(ge=0)
    end_s: float = Field(gt=0)
    box: Box
    boxes: dict[Aspect, Box] = Field(default_factory=dict, description="per-aspect box overrides")
    align: Literal["left", "center", "right"] = "center"
    valign: Literal["top", "middle", "bottom"] = "middle"
    entrance: Entrance = Entrance()

    def box_for(self, aspect: str) -> Box:
        return self.boxes.get(aspect, self.box)


class TextSlot(SlotBase):
    kind: Literal["text"] = "text"
    text: str = Field(min_length=1, description="format string over recipient columns, e.g. 'Hi {first_name}!'")
    font: Font = Font()
    plate: Color | None = Field(default=None, description="a rounded box behind the text, e.g. '#00000099'")

    def fields(self) -> list[str]:
        return format_fields(self.text)

    def format(self, values: dict[str, str]) -> str:
        return self.text.format_map(values).strip()


class ImageSlot(SlotBase):
    kind: Literal["image"] = "image"
    column: str = Field(min_length=1, description="recipient column holding the image URI (path, s3://, https://)")

    def fields(self) -> list[str]:
        return [self.column]


Slot = Annotated[TextSlot | ImageSlot, Field(discriminator="kind")]


class TemplateSpec(Strict):
    video: str | None = Field(default=None, description="MP4: path relative to the spec, s3:// or https://")
    sku: str | None = Field(default=None, pattern=NAME_PATTERN, description="use this SKU's published clip, looped")
    duration_s: float | None = Field(default=None, gt=0, le=600)
    focus: tuple[float, float] = Field(default=(0.5, 0.5), description="crop centre (x, y), 0..1, for other aspects")

    @model_validator(mode="after")
    def _one_source(self) -> TemplateSpec:
        if (self.video is None) == (self.sku is None):
            raise ValueError("give exactly one of 'video' or 'sku'")
        if self.sku is not None and self.duration_s is None:
            raise ValueError("'duration_s' is required with 'sku' (the clip is looped to that length)")
        if not all(0 <= v <= 1 for v in self.focus):
            raise ValueError(f"focus {self.focus} must be two numbers in 0..1")
        return self


class OutputSpec(Strict):
    aspects: list[Aspect] = Field(default_factory=lambda: ["16:9"], min_length=1)
    short_side: int = Field(default=720, ge=144, le=2160, multiple_of=2)

    def size(self, aspect: str) -> tuple[int, int]:
        across, down = ASPECT_RATIOS[aspect]
        short = self.short_side
        if across >= down:
            return 2 * round(short * across / down / 2), short
        return short, 2 * round(short * down / across / 2)


class EncodeSpec(Strict):
    crf: int = Field(default=21, ge=0, le=51)
    preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"] = "veryfast"
    gop_s: float = Field(default=0.5, gt=0, le=10, description="closed GOP length; spans snap to this grid")
    fast_analysis: bool = Field(default=True, description="cheaper x264 analysis (no sub-8x8 inter partitions, "
                                "fastest sub-pixel refinement, fixed B-frames, short lookahead): about 2x the "
                                "speed of plain veryfast, slightly lower quality at the same crf")


class CampaignSpec(Strict):
    name: str | None = Field(default=None, pattern=NAME_PATTERN, description="must equal the partition key if set")
    template: TemplateSpec
    recipients: str = Field(min_length=1, description="CSV: path relative to the spec, s3:// or https://")
    id_column: str = "recipient_id"
    output: OutputSpec = OutputSpec()
    encode: EncodeSpec = EncodeSpec()
    safe_area: SafeArea = SafeArea()
    slots: list[Slot] = Field(min_length=1)

    def used_columns(self) -> list[str]:
        seen: dict[str, None] = {self.id_column: None}
        for slot in self.slots:
            seen.update(dict.fromkeys(slot.fields()))
        return list(seen)

    def fingerprint(self) -> str:
        """Hash of everything that changes the pictures: not the campaign name, where the recipients live or
        which aspects are rendered (each aspect has its own folder, so adding one keeps the others' clips)."""
        data = self.model_dump(mode="json", exclude={"name": True, "recipients": True, "output": {"aspects"}})
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def format_fields(text: str) -> list[str]:
    """Field names in a format string; only plain `{name}` is allowed (no attributes, indexes or conversions)."""
    names = []
    for _, field, spec, conversion in string.Formatter().parse(text):
        if field is None:
            continue
        if not field.isidentifier() or spec or conversion:
            raise ValueError(f"'{{{field}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}' "
                             "is not a plain {column} placeholder")
        names.append(field)
    return names


def key_path(loc: tuple[Any, ...]) -> str:
    """('slots', 0, 'text', 'box', 'w') -> 'slots[0].box.w' (the union tag pydantic adds is dropped)."""
    out = ""
    for index, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif index >= 2 and isinstance(loc[index - 1], int) and loc[index - 2] == "slots" and part in ("text", "image"):
            continue
        else:
            name = _shown_key(part)
            out += f".{name}" if out else name
    return out


def _shown_key(part: Any) -> str:
    """A key as written when it is plain, else quoted (control characters escaped) and cut to 64 characters."""
    text = str(part)
    if not text.isprintable() or len(text) > 64:
        text = repr(text[:64]) + ("..." if len(text) > 64 else "")
    return text


def yaml_path(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """A pydantic error location as a path in the YAML document (the union tag dropped, as in key_path)."""
    return tuple(part for index, part in enumerate(loc)
                 if not (index >= 2 and isinstance(loc[index - 1], int) and loc[index - 2] == "slots"
                         and part in ("text", "image")))


def _geometry_problems(spec: CampaignSpec) -> list[tuple[str, str]]:
    safe = spec.safe_area
    problems = []
    for index, slot in enumerate(spec.slots):
        if slot.end_s <= slot.start_s:
            problems.append((f"slots[{index}].end_s", f"{slot.end_s:g} must be after start_s {slot.start_s:g}"))
        elif slot.entrance.kind != "none" and slot.entrance.duration_s > slot.end_s - slot.start_s:
            shown = slot.end_s - slot.start_s
            problems.append((f"slots[{index}].entrance.duration_s",
                             f"{slot.entrance.duration_s:g} s is longer than the slot is shown ({shown:g} s)"))
        if isinstance(slot, TextSlot) and slot.font.min_size > slot.font.max_size:
            problems.append((f"slots[{index}].font.min_size",
                             f"{slot.font.min_size} is larger than max_size {slot.font.max_size}"))
        if isinstance(slot, TextSlot):
            try:
                slot.fields()
            except ValueError as error:
                problems.append((f"slots[{index}].text", str(error)))
        boxes = [("box", slot.box)] + [(f"boxes.{aspect}", box) for aspect, box in slot.boxes.items()]
        for label, box in boxes:
            if (box.x < safe.left - 1e-9 or box.y < safe.top - 1e-9 or box.x + box.w > 1 - safe.right + 1e-9
                    or box.y + box.h > 1 - safe.bottom + 1e-9):
                margins = f"l={safe.left:g} t={safe.top:g} r={safe.right:g} b={safe.bottom:g}"
                where = f"{box.x:g},{box.y:g} {box.w:g}x{box.h:g}"
                problems.append((f"slots[{index}].{label}", f"box {where} is not inside the safe area (margins {margins})"))
    names = [slot.name for slot in spec.slots]
    for index, name in enumerate(names):
        if names.index(name) != index:
            problems.append((f"slots[{index}].name", f"duplicate slot name {name!r}"))
    if len(set(spec.output.aspects)) != len(spec.output.aspects):
        problems.append(("output.aspects", "an aspect is listed twice"))
    return problems


def load_spec(text: str | bytes, source: str = "campaign.yaml") -> CampaignSpec:
    """Parse and validate a spec; raises SpecError naming the file, each key path and what is wrong."""
    try:
        document = load_yaml(text, source=source)
    except YamlInputError as error:
        where = f"line {error.line}, column {error.column}: " if error.line and error.column else (
            f"line {error.line}: " if error.line else "")
        reason = error.reason.removeprefix("not valid YAML: ")
        raise SpecError(source, [("", f"{'not valid YAML: ' if reason != error.reason else ''}{where}{reason}")]) from None
    data = document.data
    if not isinstance(data, dict):
        raise SpecError(source, [("", "expected a mapping at the top level (template:, recipients:, slots: ...)")])
    try:
        spec = CampaignSpec.model_validate(data)
    except ValidationError as error:
        problems, lines = [], {}
        for item in error.errors(include_url=False):
            message = item["msg"].removeprefix("Value error, ")
            if item["type"] == "extra_forbidden":
                message = "unknown key"
            elif item["type"] == "missing":
                message = "required key is missing"
            problems.append((key_path(item["loc"]), message))
            lines[key_path(item["loc"])] = document.line_of(yaml_path(item["loc"]))
        raise SpecError(source, problems, lines) from None
    problems = _geometry_problems(spec)
    if problems:
        raise SpecError(source, problems)
    return spec


def check_columns(spec: CampaignSpec, columns: list[str], *, spec_source: str, recipients_source: str) -> None:
    """Every placeholder and image column must be a column of the recipients file."""
    known = set(columns)
    listed = ", ".join(columns)
    problems = []
    if spec.id_column not in known:
        problems.append(("id_column", f"{spec.id_column!r} is not a column of {recipients_source} (columns: {listed})"))
    for index, slot in enumerate(spec.slots):
        key = f"slots[{index}].text" if isinstance(slot, TextSlot) else f"slots[{index}].column"
        for field in slot.fields():
            if field not in known:
                problems.append((key, f"field {field!r} is not a column of {recipients_source} (columns: {listed})"))
    if problems:
        raise SpecError(spec_source, problems)


def check_timing(spec: CampaignSpec, duration_s: float, *, source: str) -> None:
    """Slots must end within the template (known only once the template has been read)."""
    problems = [
        (f"slots[{index}].end_s", f"{slot.end_s:g} s is past the end of the {duration_s:g}-s template")
        for index, slot in enumerate(spec.slots)
        if slot.end_s > duration_s + 1e-9
    ]
    if problems:
        raise SpecError(source, problems)
