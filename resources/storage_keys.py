"""Where every artifact lives in storage: the one place that spells the key layout.

```
catalog/catalog.parquet, catalog/rejects.parquet, catalog/brands.json
sources/{sha[:2]}/{sha}.{ext}                          packshots and logos, by their pixels
skus/{sku}/{hash}/[{aspect}/]{stage}.json              a stage's result (written last)
skus/{sku}/{hash}/[{aspect}/]{stage}/{provider}-s{seed}/   one render: its files and record.json
published/{sku}/{hash}[-{aspect}].{mp4,jpg}            what a storefront serves
published/manifest/{sku}.parquet                       the SKU's manifest rows, one per aspect
campaigns/{campaign}/{spec_hash}/{aspect}/{recipient}.mp4, manifest.parquet, rejects.csv
campaigns/{campaign}/{spec_hash}/manifest-parts/{run}-{chunk}.parquet, inputs/template.mp4, inputs/logos/{sha}
training/{module}/{key}/module.mp4, training/scenes/{key}/, training/presenters/{provider}/{job}.mp4
reports/cost_report.png
```

`[{aspect}/]` and `[-{aspect}]` appear only for a SKU rendered in more than one aspect, so a single-aspect
SKU's keys are the same as before aspects could be listed. Aspects are written as slugs (`16x9`).
Keys are plain strings relative to the storage root; nothing here touches storage.
"""

from __future__ import annotations

CATALOG = "catalog/catalog.parquet"
CATALOG_REJECTS = "catalog/rejects.parquet"
BRAND_KITS = "catalog/brands.json"
SOURCES_PREFIX = "sources/"
SKUS_ROOT = "skus"
PUBLISHED_ROOT = "published"
MANIFEST_PREFIX = f"{PUBLISHED_ROOT}/manifest"
GALLERY = f"{PUBLISHED_ROOT}/index.html"
COST_REPORT_CHART = "reports/cost_report.png"
TRAINING_ROOT = "training"
TRAINING_SCENES_PREFIX = f"{TRAINING_ROOT}/scenes"
TRAINING_PRESENTERS_PREFIX = f"{TRAINING_ROOT}/presenters"
CAMPAIGNS_ROOT = "campaigns"
RECORD_FILE = "record.json"


def aspect_slug(aspect: str) -> str:
    """`16:9` -> `16x9`: an aspect as it appears in a key (no colon, which some stores and URLs mangle)."""
    return aspect.replace(":", "x")


def source_image(sha256: str, extension: str) -> str:
    """Content-addressed copy of a packshot or logo."""
    return f"{SOURCES_PREFIX}{sha256[:2]}/{sha256}.{extension}"


def sku_content(sku_id: str, content_hash: str) -> str:
    return f"{SKUS_ROOT}/{sku_id}/{content_hash}"


def rendition(sku_id: str, content_hash: str, aspect: str | None = None) -> str:
    """Folder of one rendition of a SKU's content; `aspect` only for SKUs rendered in several aspects."""
    base = sku_content(sku_id, content_hash)
    return base if aspect is None else f"{base}/{aspect_slug(aspect)}"


def stage_pointer(rendition_prefix: str, stage: str) -> str:
    return f"{rendition_prefix}/{stage}.json"


def render_attempt(rendition_prefix: str, stage: str, provider: str, seed: int) -> str:
    return f"{rendition_prefix}/{stage}/{provider}-s{seed}"


def attempt_record(render_prefix: str) -> str:
    return f"{render_prefix}/{RECORD_FILE}"


def published_base(sku_id: str, content_hash: str, aspect: str | None = None) -> str:
    base = f"{PUBLISHED_ROOT}/{sku_id}/{content_hash}"
    return base if aspect is None else f"{base}-{aspect_slug(aspect)}"


def published_video(sku_id: str, content_hash: str, aspect: str | None = None) -> str:
    return published_base(sku_id, content_hash, aspect) + ".mp4"


def published_poster(sku_id: str, content_hash: str, aspect: str | None = None) -> str:
    return published_base(sku_id, content_hash, aspect) + ".jpg"


def parse_published_video(key: str) -> tuple[str, str] | None:
    """(sku_id, content_hash) of a published video key, else None."""
    parts = key.split("/")
    if len(parts) != 3 or parts[0] != PUBLISHED_ROOT or not parts[2].endswith(".mp4"):
        return None
    return parts[1], parts[2].removesuffix(".mp4").split("-", 1)[0]


def relative_to_published(key: str) -> str:
    return key.removeprefix(f"{PUBLISHED_ROOT}/")


def manifest(sku_id: str) -> str:
    return f"{MANIFEST_PREFIX}/{sku_id}.parquet"


def campaign(campaign_name: str, spec_hash: str) -> str:
    return f"{CAMPAIGNS_ROOT}/{campaign_name}/{spec_hash}"


def campaign_aspect(campaign_name: str, spec_hash: str, aspect: str) -> str:
    return f"{campaign(campaign_name, spec_hash)}/{aspect_slug(aspect)}/"


def campaign_clip(campaign_name: str, spec_hash: str, aspect: str, recipient_id: str) -> str:
    return f"{campaign_aspect(campaign_name, spec_hash, aspect)}{recipient_id}.mp4"


def campaign_manifest(campaign_prefix: str) -> str:
    return f"{campaign_prefix}/manifest.parquet"


def campaign_manifest_parts(campaign_prefix: str) -> str:
    return f"{campaign_prefix}/manifest-parts/"


def campaign_manifest_part(campaign_prefix: str, run_id: str, part: str) -> str:
    """Manifest rows one step of one run wrote (a chunk's clips, or the clips the plan reused)."""
    return f"{campaign_manifest_parts(campaign_prefix)}{run_id}-{part}.parquet"


def campaign_rejects(campaign_prefix: str) -> str:
    return f"{campaign_prefix}/rejects.csv"


def campaign_template(campaign_prefix: str) -> str:
    """The template the campaign's chunks prepare from (the spec hash covers its bytes)."""
    return f"{campaign_prefix}/inputs/template.mp4"


def campaign_logo(campaign_prefix: str, sha256: str) -> str:
    """A recipient logo, by its bytes, for the chunk steps to read."""
    return f"{campaign_prefix}/inputs/logos/{sha256}"


def training_module(module: str, module_key: str) -> str:
    return f"{TRAINING_ROOT}/{module}/{module_key}"


def training_scene(scene_key: str) -> str:
    return f"{TRAINING_SCENES_PREFIX}/{scene_key}"


def training_presenter_clip(provider: str, job_key: str) -> str:
    return f"{TRAINING_PRESENTERS_PREFIX}/{provider}/{job_key}.mp4"
