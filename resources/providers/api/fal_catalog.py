"""The fal models skuvid can buy clips from, as configuration: `resources/fal_models.yaml`.

Each entry names a fal endpoint and says how our request maps onto its arguments (which argument carries the
image, the prompt, the seed, the length and the aspect, and how the model spells a length: 5, "5" or "5s"),
which lengths it sells, which fixed arguments it always gets, and which row of the price table bills it. The
file is untrusted input like any other: bounded by videokit.yaml_input, checked by pydantic, and a bad entry
fails with the file, line and key before anything is sent.
"""

from __future__ import annotations

import functools
from importlib import resources as package_files
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from videokit.yaml_input import YamlInputError, load_yaml

ASPECTS = ("16:9", "9:16", "1:1")
ArgumentName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
ModelName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
ArgumentValue = Annotated[str, Field(max_length=500)] | bool | int | float


class FalCatalogError(ValueError):
    pass


class DurationRule(BaseModel):
    """The lengths a model sells and how its length argument is written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    argument: ArgumentName | None = Field(
        default="duration", description="The length argument; null for a model that makes one fixed length."
    )
    choices: tuple[Annotated[int, Field(ge=1, le=60)], ...] = Field(min_length=1, max_length=10)
    format: Literal["number", "text", "text_seconds"] = Field(
        default="number", description='How a length is written: 5, "5" or "5s".'
    )

    @model_validator(mode="after")
    def _one_choice_without_argument(self) -> DurationRule:
        if self.argument is None and len(self.choices) != 1:
            raise ValueError("a model without a length argument makes exactly one length (one choice)")
        return self

    def seconds_for(self, wanted_s: float) -> int:
        """The length to buy: the shortest sold that covers `wanted_s`, else the longest sold."""
        covering = [choice for choice in sorted(self.choices) if choice >= wanted_s - 1e-9]
        return covering[0] if covering else max(self.choices)

    def encode(self, seconds: int) -> int | str:
        if self.format == "text":
            return str(seconds)
        if self.format == "text_seconds":
            return f"{seconds}s"
        return seconds

    def decode(self, value: object) -> int | None:
        """A length as the model reads it (the emulator checks requests with this), None when malformed."""
        if self.format == "number":
            return value if isinstance(value, int) and not isinstance(value, bool) else None
        if not isinstance(value, str):
            return None
        digits = value.removesuffix("s") if self.format == "text_seconds" and value.endswith("s") else value
        if self.format == "text_seconds" and digits == value:
            return None
        return int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 3 else None


class FalModel(BaseModel):
    """One fal image-to-video endpoint and how skuvid calls it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: str = Field(
        pattern=r"^[a-z0-9][a-z0-9-]{0,63}(/[a-z0-9][a-z0-9.-]{0,63}){1,6}$",
        description="fal model id, e.g. fal-ai/pika/v2.2/image-to-video",
    )
    model: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$", description="The model as cost records name it.")
    price: str = Field(pattern=r"^[a-z0-9_]{1,64}$", description="Row of the price table's `api` section.")
    image_argument: ArgumentName = "image_url"
    prompt_argument: ArgumentName = "prompt"
    seed_argument: ArgumentName | None = None
    duration: DurationRule
    aspect_argument: ArgumentName | None = None
    aspects: dict[Literal["16:9", "9:16", "1:1"], Annotated[str, Field(max_length=32)]] = Field(
        default_factory=dict
    )
    arguments: dict[ArgumentName, ArgumentValue] = Field(default_factory=dict, max_length=20)
    source: str = Field(default="", max_length=500, description="Where the argument names were read.")

    @model_validator(mode="after")
    def _consistent(self) -> FalModel:
        if self.aspect_argument is not None and set(self.aspects) != set(ASPECTS):
            raise ValueError(f"aspect_argument needs `aspects` for each of {', '.join(ASPECTS)}")
        if self.aspect_argument is None and self.aspects:
            raise ValueError("`aspects` without aspect_argument would never be sent")
        mapped = [
            self.image_argument,
            self.prompt_argument,
            self.seed_argument,
            self.duration.argument,
            self.aspect_argument,
        ]
        mapped = [name for name in mapped if name is not None]
        if len(set(mapped)) != len(mapped):
            raise ValueError(f"two of our fields map onto the same argument: {', '.join(mapped)}")
        clashes = sorted(set(mapped) & set(self.arguments))
        if clashes:
            raise ValueError(f"fixed arguments {', '.join(clashes)} would overwrite mapped ones")
        return self

    @property
    def app(self) -> str:
        """fal's app id (owner/app): status and response URLs live under it, not under the full model id."""
        return "/".join(self.endpoint.split("/")[:2])

    def arguments_for(self, *, prompt: str, seconds: int, seed: int, aspect: str) -> dict[str, object]:
        """The request body without the image: fixed arguments, then each mapped field."""
        body: dict[str, object] = {**self.arguments, self.prompt_argument: prompt}
        if self.duration.argument is not None:
            body[self.duration.argument] = self.duration.encode(seconds)
        if self.seed_argument is not None:
            body[self.seed_argument] = seed
        if self.aspect_argument is not None:
            body[self.aspect_argument] = self.aspects[aspect]
        return body


class FalCatalog(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    models: dict[ModelName, FalModel] = Field(min_length=1, max_length=64)


def parse_catalog(text: str | bytes, *, source: str) -> dict[str, FalModel]:
    try:
        document = load_yaml(text, source=source, max_bytes=256 * 1024, max_depth=8, max_nodes=5000)
    except YamlInputError as error:
        raise FalCatalogError(str(error)) from None
    try:
        return dict(FalCatalog.model_validate(document.data).models)
    except ValidationError as error:
        first = error.errors()[0]
        path = tuple(part for part in first["loc"] if not str(part).startswith("function-"))
        key = ".".join(str(part) for part in path) or "top level"
        raise FalCatalogError(
            f"{source} line {document.line_of(path)}, {key}: {first['msg']}"
            + (f" ({len(error.errors()) - 1} more problems)" if len(error.errors()) > 1 else "")
        ) from None


def default_catalog_text() -> str:
    return package_files.files("resources").joinpath("fal_models.yaml").read_text()


@functools.cache
def packaged_catalog() -> dict[str, FalModel]:
    return parse_catalog(default_catalog_text(), source="resources/fal_models.yaml")


def load_catalog(path: str | None = None) -> dict[str, FalModel]:
    """The packaged catalog, or the one at `path`."""
    if path is None:
        return packaged_catalog()
    return parse_catalog(Path(path).read_bytes(), source=path)


def fal_model_names() -> tuple[str, ...]:
    """Provider names of the packaged fal models (each is a routing name and a resource key)."""
    return tuple(packaged_catalog())
