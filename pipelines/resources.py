"""Every resource, built from the environment in one place."""

import os

from resources.generators.cpu import ComposeKeyframes, MotionClips
from resources.pricing import PricesResource
from resources.quality import QualityBarResource
from resources.storage import StorageResource


def build_resources() -> dict:
    prices = PricesResource(path=os.environ.get("SKUVID_PRICES"))
    return {
        "storage": StorageResource(root=os.environ.get("SKUVID_STORAGE_ROOT", ".data")),
        "prices": prices,
        "quality_bar": QualityBarResource(),
        "compose": ComposeKeyframes(prices=prices),
        "motion": MotionClips(prices=prices),
    }
