"""Every resource, built from the environment in one place. API keys come in through `EnvVar`."""

import os

from dagster import EnvVar

from pipelines.settings import ledger_url, storage_retry_s
from resources.ledger import LedgerResource
from resources.presenters.did import DidPresenter
from resources.presenters.heygen import HeyGenPresenter
from resources.pricing import PricesResource
from resources.providers.api.fal import FalClips
from resources.providers.api.fal_catalog import fal_model_names
from resources.providers.api.kling import KlingClips
from resources.providers.api.runway import RunwayClips
from resources.providers.cpu import ComposeKeyframes, MotionClips
from resources.providers.gpu.cogvideox import CogVideoXClips
from resources.providers.gpu.flux import FluxKeyframes
from resources.providers.gpu.hunyuan import HunyuanClips
from resources.providers.gpu.wan import WanClips
from resources.quality import QualityBarResource
from resources.routing import RoutingResource
from resources.step_outputs import step_outputs_io_manager
from resources.storage import StorageResource


def secret(name: str) -> EnvVar | None:
    """The key as an EnvVar (its value never enters config or logs); None when unset, so the provider
    reports itself unavailable instead of failing the whole code location."""
    return EnvVar(name) if os.environ.get(name) else None


def api_settings() -> dict[str, dict]:
    """Keys and base URLs of the API providers; base URLs are settable for staging and emulators."""
    settings = {
        "runway": {"api_key": secret("RUNWAYML_API_SECRET"), "base_url": os.environ.get("SKUVID_RUNWAY_BASE_URL")},
        "kling": {"access_key": secret("KLING_ACCESS_KEY"), "secret_key": secret("KLING_SECRET_KEY"),
                  "base_url": os.environ.get("SKUVID_KLING_BASE_URL")},
        "fal": {"api_key": secret("FAL_KEY"), "base_url": os.environ.get("SKUVID_FAL_BASE_URL")},
        "heygen": {"api_key": secret("HEYGEN_API_KEY"), "base_url": os.environ.get("SKUVID_HEYGEN_BASE_URL")},
        "did": {"api_key": secret("DID_API_KEY"), "base_url": os.environ.get("SKUVID_DID_BASE_URL")},
    }
    return {name: {k: v for k, v in fields.items() if v is not None} for name, fields in settings.items()}


def build_resources(api_overrides: dict[str, dict] | None = None) -> dict:
    prices = PricesResource(path=os.environ.get("SKUVID_PRICES"))
    storage = StorageResource(root=os.environ.get("SKUVID_STORAGE_ROOT", ".data"), retry_s=storage_retry_s())
    ledger = LedgerResource(url=ledger_url(), daily_budget_usd=float(os.environ["SKUVID_DAILY_BUDGET_USD"])
                            if os.environ.get("SKUVID_DAILY_BUDGET_USD") else None)
    api = {**api_settings(), **(api_overrides or {})}
    shared_api = {"storage": storage, "ledger": ledger, "prices": prices}
    gpu_device = os.environ.get("SKUVID_GPU_DEVICE", "cuda")
    return {
        "storage": storage,
        "step_outputs": step_outputs_io_manager,
        "prices": prices,
        "ledger": ledger,
        "quality_bar": QualityBarResource(),
        "routing": RoutingResource(path=os.environ.get("SKUVID_ROUTING")),
        "compose": ComposeKeyframes(prices=prices),
        "flux": FluxKeyframes(prices=prices, device=gpu_device, local_path=os.environ.get("SKUVID_FLUX_PATH")),
        "motion": MotionClips(prices=prices),
        "wan": WanClips(prices=prices, device=gpu_device, variant="vace-1.3b",
                        local_path=os.environ.get("SKUVID_WAN_PATH")),
        "wan_ti2v": WanClips(prices=prices, device=gpu_device, variant="ti2v-5b",
                             local_path=os.environ.get("SKUVID_WAN_TI2V_PATH")),
        "cogvideox": CogVideoXClips(prices=prices, device=gpu_device, local_path=os.environ.get("SKUVID_COGVIDEOX_PATH")),
        "wan_i2v_a14b": WanClips(prices=prices, device=gpu_device, variant="i2v-a14b",
                                 local_path=os.environ.get("SKUVID_WAN_I2V_A14B_PATH")),
        "hunyuan_i2v": HunyuanClips(prices=prices, device=gpu_device, local_path=os.environ.get("SKUVID_HUNYUAN_I2V_PATH")),
        "runway": RunwayClips(**api["runway"], **shared_api),
        "kling": KlingClips(**api["kling"], **shared_api),
        # Every model of the fal catalog (pika, kling_turbo, veo_fast, ...) on the one fal account.
        **{name: FalClips(model=name, **api["fal"], **shared_api) for name in fal_model_names()},
        "heygen": HeyGenPresenter(**api["heygen"], **shared_api),
        "did": DidPresenter(**api["did"], **shared_api),
    }
