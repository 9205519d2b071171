"""Routing policy: the ordered providers that render each SKU's keyframe and clip, chosen by catalog fields.

Errors name the file, line and key, and are raised when the policy is loaded, before any money is spent.
"""

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources as package_files
from pathlib import Path

import yaml
from dagster import ConfigurableResource
from pydantic import Field

from resources.pricing import PriceTable
from videokit.yaml_input import YamlInputError, compose_yaml

STAGES = ("keyframe", "clip")
# Every retake of an API clip is paid; more than a few new seeds has never turned a failing provider around,
# so the next provider is the better bet.
MAX_RETAKES = 3
TOP_LEVEL_KEYS = ("retakes", "max_usd_per_sku", "default", "rules")
Path_ = tuple[str | int, ...]


class PolicyError(ValueError):
    pass


@dataclass(frozen=True)
class Rule:
    name: str
    when: Mapping[str, tuple[str, ...]]
    chains: Mapping[str, tuple[str, ...]]

    def matches(self, sku: Mapping[str, str]) -> bool:
        return all(str(sku.get(field, "")) in accepted for field, accepted in self.when.items())


@dataclass(frozen=True)
class Route:
    rule: str
    keyframe: tuple[str, ...]
    clip: tuple[str, ...]

    def reason(self) -> str:
        return f"rule {self.rule!r}: clip chain {' -> '.join(self.clip)}"


@dataclass(frozen=True)
class RoutingPolicy:
    source: str
    retakes: int
    default: Mapping[str, tuple[str, ...]]
    rules: tuple[Rule, ...]
    max_usd_per_sku: float | None = None  # spend cap per SKU and content, every attempt of every provider

    def route(self, sku: Mapping[str, str]) -> Route:
        for rule in self.rules:
            if rule.matches(sku):
                return Route(rule.name, rule.chains.get("keyframe", self.default["keyframe"]),
                             rule.chains.get("clip", self.default["clip"]))
        return Route("default", self.default["keyframe"], self.default["clip"])

    def providers(self, stage: str) -> set[str]:
        return set(self.default[stage]) | {p for rule in self.rules for p in rule.chains.get(stage, ())}


def node_to_python(node: yaml.Node, path: Path_, lines: dict[Path_, int]):
    """Plain values from a YAML node tree, remembering the line of every key and list item."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        mapping = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                raise PolicyError(f"line {key.start_mark.line + 1}: a key must be plain text, not a list or mapping")
            mapping[key.value] = node_to_python(value, (*path, key.value), lines)
            lines[(*path, key.value)] = key.start_mark.line + 1  # a key's line, not its value's
        return mapping
    if isinstance(node, yaml.SequenceNode):
        return [node_to_python(item, (*path, index), lines) for index, item in enumerate(node.value)]
    return node.value


def parse_policy(text: str, *, source: str, providers: Mapping[str, Iterable[str]], priced: Iterable[str]) -> RoutingPolicy:
    """Parse and check a policy. `providers` maps each stage to the provider names that exist; `priced` names
    the providers with a price, since a chain with an unpriced provider could not be estimated or budgeted."""
    lines: dict[Path_, int] = {}
    priced = set(priced)

    def fail(path: Path_, message: str) -> PolicyError:
        line = lines.get(path) or lines.get(path[:-1]) or 1
        key = "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(path))
        return PolicyError(f"{source} line {line}, {key or 'top level'}: {message}")

    try:
        node = compose_yaml(text, source=source)
    except YamlInputError as error:
        raise PolicyError(str(error)) from None
    try:
        data = node_to_python(node, (), lines) if node is not None else None
    except PolicyError as error:
        raise PolicyError(f"{source} {error}") from None
    if not isinstance(data, dict):
        raise fail((), "expected a mapping with `default` and `rules`")
    unknown = set(data) - set(TOP_LEVEL_KEYS)
    if unknown:
        raise fail((min(unknown),), f"unknown key (expected {', '.join(TOP_LEVEL_KEYS)})")

    def chain(value, path: Path_, stage: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise fail(path, f"{stage} must be a non-empty list of provider names")
        for index, name in enumerate(value):
            if name not in set(providers[stage]):
                known = ", ".join(sorted(providers[stage]))
                raise fail((*path, index), f"unknown {stage} provider {name!r} (known: {known})")
            if name not in priced:
                raise fail((*path, index), f"provider {name!r} has no price in the price table")
        return tuple(value)

    def chains(value, path: Path_, required: bool) -> dict[str, tuple[str, ...]]:
        if not isinstance(value, dict):
            raise fail(path, "expected a mapping of stage -> provider list")
        for key in value:
            if key not in STAGES and key not in ("name", "when"):
                raise fail((*path, key), f"unknown key (expected {', '.join(STAGES)})")
        if required and not all(stage in value for stage in STAGES):
            raise fail(path, f"default needs both {' and '.join(STAGES)}")
        return {stage: chain(value[stage], (*path, stage), stage) for stage in STAGES if stage in value}

    retakes = data.get("retakes", "1")
    if not (isinstance(retakes, str) and retakes.isascii() and retakes.isdigit() and len(retakes) <= 2
            and int(retakes) <= MAX_RETAKES):
        raise fail(("retakes",), f"must be a whole number from 0 to {MAX_RETAKES}, not {retakes!r}")
    max_usd_per_sku = spend_cap(data.get("max_usd_per_sku"), fail)
    default = chains(data.get("default"), ("default",), required=True)
    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list):
        raise fail(("rules",), "expected a list of rules")
    rules = []
    for index, raw in enumerate(raw_rules):
        path = ("rules", index)
        if not isinstance(raw, dict) or "when" not in raw:
            raise fail(path, "a rule needs `when` (catalog field -> value or list of values)")
        when = raw["when"]
        if not isinstance(when, dict) or not when:
            raise fail((*path, "when"), "expected a mapping of catalog field -> value or list of values")
        accepted = {field: tuple(v) if isinstance(v, list) else (v,) for field, v in when.items()}
        for field, options in accepted.items():
            if not all(isinstance(option, str) for option in options):
                raise fail((*path, "when", field), "expected a value or a list of values, not a mapping or nested list")
        rule_chains = chains(raw, path, required=False)
        if not rule_chains:
            raise fail(path, f"a rule needs at least one of {', '.join(STAGES)}")
        rules.append(Rule(str(raw.get("name", f"rule {index + 1}")), accepted, rule_chains))
    return RoutingPolicy(source, int(retakes), default, tuple(rules), max_usd_per_sku)


def spend_cap(value, fail) -> float | None:
    if value is None:
        return None
    try:
        cap = float(value) if isinstance(value, str) else math.nan
    except ValueError:
        cap = math.nan
    if not math.isfinite(cap) or cap <= 0:
        raise fail(("max_usd_per_sku",), f"must be a positive amount in US dollars, not {value!r}")
    return cap


def default_policy_text() -> str:
    return package_files.files("resources").joinpath("routing.yaml").read_text()


class RoutingResource(ConfigurableResource):
    """The routing policy: the packaged `resources/routing.yaml` by default, or a YAML file given by path."""

    path: str | None = Field(default=None, description="Path to a routing policy YAML; default: the packaged one.")

    def load(self, providers: Mapping[str, Iterable[str]], priced: Iterable[str]) -> RoutingPolicy:
        if self.path is None:
            return parse_policy(default_policy_text(), source="resources/routing.yaml", providers=providers, priced=priced)
        return parse_policy(Path(self.path).read_text(), source=self.path, providers=providers, priced=priced)


def load_policy(prices: PriceTable, path: str | None) -> RoutingPolicy:
    """The routing policy (the packaged one when `path` is None), checked against the providers the price table
    knows: a chain naming a provider without a price could be neither budgeted nor estimated."""
    stages: dict[str, set[str]] = defaultdict(set)
    for name, cost in prices.providers.items():
        stages[cost.stage].add(name)
    return RoutingResource(path=path).load(stages, priced=prices.providers)


def first_available(chain: Iterable[str], available: Callable[[str], bool]) -> str:
    """The first provider of `chain` that `available` accepts."""
    chain = tuple(chain)
    for provider in chain:
        if available(provider):
            return provider
    raise ValueError(f"no provider of chain {' -> '.join(chain)} is available")
