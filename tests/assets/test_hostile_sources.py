"""Every reader of untrusted files against the hostile-source corpus: catalog packshots, brand-kit logos, campaign
recipients, template and logos, training images. Nothing outside the policy is opened or fetched; every refusal
reads the same; nothing crashes or takes long."""

from __future__ import annotations

import json
import time

import pytest

from assets.campaigns.inputs import CampaignError, LogoCache, load_template, read_recipients
from assets.catalog.packshot_intake import intake_packshots
from assets.catalog.rows import CatalogFileError
from assets.catalog.sku_catalog import load_brand_kits
from assets.training.inputs import load_script, resolve_visuals
from resources.sources import shown
from resources.storage import StorageResource
from tests.hostile_sources import LoggingServer, Sentinel, http_cases, local_cases, png_bytes
from videokit.campaigns.spec import load_spec
from videokit.training.script import ScriptError

REASON = "not allowed by the source policy: {}"


def reason(name: str) -> str:
    return REASON.format(shown(name))
SPEC = """name: hostile
template: {{video: {template}}}
recipients: {recipients}
output: {{aspects: ["16:9"], short_side: 360}}
slots:
  - {{name: logo, kind: image, column: logo, start_s: 0.0, end_s: 1.0, box: {{x: 0.1, y: 0.1, w: 0.3, h: 0.3}}}}
"""
SCRIPT = """---
title: Hostile
voice: en-us
---

## Picture
image: {image}

A picture.
"""


@pytest.fixture
def world(tmp_path, monkeypatch):
    """A folder of untrusted files, a sentinel outside it, and a loopback server the policy does not open."""
    for name in ("SKUVID_SOURCE_ROOTS", "SKUVID_SOURCE_OPEN_NETWORKS", "SKUVID_SOURCE_HOSTS", "SKUVID_SOURCE_S3"):
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "inputs"
    folder.mkdir()
    (folder / "ok.png").write_bytes(png_bytes())
    sentinel = Sentinel.create(tmp_path / "outside.png")
    server = LoggingServer("127.0.0.2")
    names = [case.uri for case in local_cases(folder, sentinel)]
    names += [case.uri for case in http_cases(server, server, base=str(folder))]
    yield folder, sentinel, server, names
    server.close()
    assert server.requests == [], "a request reached a loopback server the policy does not open"
    assert sentinel.opened == [], "the sentinel outside the allowed folder was opened"


def yaml_safe(names: list[str]) -> list[str]:
    return [n for n in names if n.isprintable() and "\0" not in n]


def timed(call):
    started = time.monotonic()
    result = call()
    assert time.monotonic() - started < 2.0
    return result


def test_catalog_packshots(world, tmp_path):
    folder, _, _, names = world
    storage = StorageResource(root=str(tmp_path / "data"))
    results = timed(lambda: intake_packshots(names + ["ok.png"], base=str(folder), storage=storage, max_pixels=10**7))
    assert not isinstance(results.pop("ok.png"), str)
    for name, result in results.items():  # unreadable ones may still land (ImageUnavailable): same reason
        assert getattr(result, "reason", result) == reason(name), name
    assert len(storage.list_keys("sources/")) == 1


def test_brand_kit_logos(world):
    folder, _, _, names = world
    for name in yaml_safe(names):
        brands = folder / "brands.yaml"
        brands.write_text(
            f"brands:\n  acme:\n    background: {{style: solid, colors: [\"#FFFFFF\"]}}\n    logo: {json.dumps(name)}\n"
        )
        with pytest.raises(CatalogFileError) as raised:
            timed(lambda: load_brand_kits(str(brands)))  # noqa: B023 - called at once
        assert reason(name) in str(raised.value), name


def test_campaign_logos_recipients_and_template(world):
    folder, _, _, names = world
    logos = LogoCache(str(folder))
    for name in names:
        assert timed(lambda: logos(name)) == (None, reason(name)), name  # noqa: B023
    (folder / "recipients.csv").write_text("recipient_id,logo\na1,ok.png\n")
    for name in yaml_safe(names):
        spec_path = folder / "spec.yaml"
        spec_path.write_text(SPEC.format(template=json.dumps(name), recipients=json.dumps(name)))
        spec = load_spec(spec_path.read_bytes(), source=str(spec_path))
        with pytest.raises(CampaignError, match="not allowed by the source policy"):
            timed(lambda: read_recipients(spec, str(spec_path)))  # noqa: B023
        with pytest.raises(CampaignError, match="not allowed by the source policy"):
            timed(lambda: load_template(spec, str(spec_path), StorageResource(root=str(folder / "data"))))  # noqa: B023


def test_training_images(world, tmp_path):
    folder, _, _, names = world
    storage = StorageResource(root=str(tmp_path / "data"))
    checked = 0
    for name in yaml_safe(names):
        path = folder / "module.md"
        path.write_text(SCRIPT.format(image=name))
        try:
            script, base = load_script(str(path))
        except ScriptError:
            continue  # the script parser refused the name itself
        with pytest.raises(ScriptError) as raised:
            timed(lambda: resolve_visuals(script, base, storage, lambda _: None))  # noqa: B023
        assert reason(name) in str(raised.value), name
        checked += 1
    assert checked >= len(names) - 5


def test_campaign_logos_are_kept_once_per_content_and_bounded(tmp_path):
    folder = tmp_path / "campaign"
    (folder / "logos").mkdir(parents=True)
    logo = png_bytes(512)
    (folder / "logos" / "acme.png").write_bytes(logo)
    spellings = ["logos/acme.png", "./logos/acme.png", "logos//acme.png", "logos/./acme.png", (folder / "logos" / "acme.png").as_uri()]
    logos = LogoCache(str(folder))
    for spelling in spellings:
        data, error = logos(spelling)
        assert error == "" and data == logo
    assert logos.held == len(logo) and len(logos.by_content) == 1
    (folder / "logos" / "other.png").write_bytes(png_bytes(600, (1, 2, 3)))
    small = LogoCache(str(folder), max_bytes=len(logo) + 10)
    assert small("logos/acme.png")[1] == ""
    data, error = small("logos/other.png")
    assert data is None and "distinct logos in this campaign over" in error
