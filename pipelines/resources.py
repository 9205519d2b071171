"""Every resource, built from the environment in one place."""

import os

from resources.generators.cpu import ComposeKeyframes, MotionClips
from resources.pricing import PricesResource
from resources.quality import QualityBarResource
from resources.routing import RoutingResource
from resources.storage import StorageResource


def build_resources() -> dict:
    prices = PricesResource(path=os.environ.get("SKUVID_PRICES"))
    return {
        "storage": StorageResource(root=os.environ.get("SKUVID_STORAGE_ROOT", ".data")),
        "prices": prices,
        "quality_bar": QualityBarResource(),
        "routing": RoutingResource(path=os.environ.get("SKUVID_ROUTING")),
        "compose": ComposeKeyframes(prices=prices),
        "motion": MotionClips(prices=prices),
    }
