"""`training_module` per module: a narrated training video from a hand-written script, re-rendering only the
scenes that changed.

The partition key is the module name; the run config names the script (format: videokit/training/script.py,
example: samples/training/product-care.md). Each scene is cached under `training/scenes/{scene_key}/` by a
hash of everything that shapes it (text, visual, voice or presenter clip, look, encoder settings); a scene
whose key exists is not rendered again but joined by stream copy. A module lands at
`training/{module}/{module_key}/`: `module.mp4` (H.264 + AAC, faststart, MP4 chapters), `captions.vtt`,
`chapters.vtt`, `chapters.json`, `poster.jpg` and `module.json` (written last).

Narration is espeak-ng's unless the script asks for a presenter (HeyGen, D-ID) that is available here (a key,
or an emulator's base URL): then the presenter's clip narrates each scene and appears beside its slide.
Presenter clips are paid jobs in the ledger, stored under `training/presenters/`, and never bought twice.
Without the presenter the module is a narrated slide video, and the metadata says why.
"""

import hashlib
import json
import resource
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from assets.partitions import module_partitions
from assets.training.inputs import (
    SceneVisual,
    Still,
    check_voice,
    draw_stills,
    load_script,
    look_of,
    resolve_visuals,
)
from assets.training.records import ModuleRecord, ScenePart, SceneRecord, read_training_record
from resources import storage_keys
from resources.api_client.errors import ProviderError
from resources.ledger import LedgerError, LedgerResource
from resources.presenters.base import (
    ApiPresenterProvider,
    PresenterInputError,
    PresenterRequest,
    PresenterResult,
    presenter_list_price,
)
from resources.presenters.did import DidPresenter
from resources.presenters.heygen import HeyGenPresenter
from resources.pricing import CostRecord, PricesResource
from resources.storage import StorageResource
from videokit.media.encode import encode_jpeg
from videokit.training.captions import Chapter, chapters_json, chapters_webvtt, shifted, webvtt
from videokit.training.module_assembly import (
    AssemblySettings,
    ModuleFileReport,
    ScenePieces,
    VideoPart,
    assemble,
    inspect_module,
)
from videokit.training.narration import EspeakSpeech
from videokit.training.scene_render import SceneSpec, render_scenes
from videokit.training.script import MODULE_PATTERN, ModuleScript, ScriptError
from videokit.training.slides import Look, render_title_card

SCENE_VERSION = 1
MODULE_VERSION = 1
SCENES_PREFIX = storage_keys.TRAINING_SCENES_PREFIX
PRESENTERS_PREFIX = storage_keys.TRAINING_PRESENTERS_PREFIX
Log = Callable[[str], None]


class TrainingError(RuntimeError):
    """The module cannot be made (presenter job failed, budget too small); the message says what to do."""


class TrainingConfig(dg.Config):
    script: str = Field(
        default="samples/training/quick-start.md",
        description="The module script (Markdown): a path, s3:// or https://.",
    )
    presenter: str = Field(
        default="",
        description="none, heygen or did to override the script's presenter; empty keeps the script's.",
    )
    workers: int = Field(
        default=0, description="Scene render processes; 0: one per CPU this process may use."
    )
    presenter_concurrency: int = Field(default=4, description="Presenter clips in flight at once.")
    budget_usd: float | None = Field(
        default=None,
        description="Most this module may spend on presenter clips "
        "(ledger scope training:<module>); none: no limit.",
    )


@dataclass
class ModuleReport:
    module: str
    title: str
    script: str
    module_key: str
    prefix: str
    duration_s: float
    scenes: int
    scenes_rendered: int
    scenes_reused: int
    reused: bool
    narrator: str  # espeak-ng, heygen or did
    presenter_fallback: str  # why the script's presenter is not narrating, if it is not
    words: int
    narration_chars: int
    tts_chars: int  # sent to espeak-ng in this run
    speech_s: float  # narration in the module, seconds
    presenter_s: float  # presenter clips in the module, seconds
    presenter_list_usd: float  # their list price
    presenter_charged_usd: float  # charged in this run: delivered seconds x list price, per clip
    presenter_clips_bought: int
    presenter_worst_case_usd: float  # what the clips bought in this run reserved (their worst case)
    presenter_overrun_usd: float  # billed past those reservations (recorded in the ledger, never charged)
    cpu_s: float
    wall_s: float
    cost_usd: float
    estimates_usd: dict[str, float]
    sku_fallbacks: list[str]
    files: dict[str, str]
    video_codec: str = ""
    audio_codec: str = ""
    faststart: bool = False
    chapters: int = 0
    chapter_titles: list[str] = field(default_factory=list)

    @property
    def realtime_factor(self) -> float:
        return self.duration_s / self.wall_s if self.wall_s > 0 else 0.0


def _hash(data: object, length: int = 24) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:length]


def scene_prefix(key: str) -> str:
    return storage_keys.training_scene(key)


def presenter_key(provider: str, job_key: str) -> str:
    return storage_keys.training_presenter_clip(provider, job_key)


# --------------------------------------------------------------------------- scene cache


def save_scene(storage: StorageResource, key: str, rendered, title: str) -> SceneRecord:
    """Write a rendered scene's parts and audio, then its record (the commit point)."""
    prefix = scene_prefix(key)
    parts = []
    for index, part in enumerate(rendered.pieces.parts):
        name = f"part-{index}.mp4"
        storage.write_bytes(f"{prefix}/{name}", part.mp4)
        parts.append(ScenePart(file=name, frames=part.frames, repeat=part.repeat))
    storage.write_bytes(f"{prefix}/audio.m4a", rendered.pieces.audio)
    record = SceneRecord(
        key=key,
        title=title,
        n_frames=rendered.pieces.n_frames,
        parts=tuple(parts),
        speech_s=rendered.speech_s,
        cues=tuple(rendered.cues),
        tts_chars=rendered.tts_chars,
        cpu_s=rendered.cpu_s,
        created_at=datetime.now(UTC),
    )
    storage.write_json(f"{prefix}/scene.json", record.to_json())
    return record


def load_scene(storage: StorageResource, record: SceneRecord) -> ScenePieces:
    prefix = scene_prefix(record.key)
    parts = [VideoPart(storage.read_bytes(f"{prefix}/{p.file}"), p.frames, p.repeat) for p in record.parts]
    return ScenePieces(parts=parts, audio=storage.read_bytes(f"{prefix}/audio.m4a"), n_frames=record.n_frames)


# --------------------------------------------------------------------------- presenters


@dataclass
class PresenterPlan:
    provider: ApiPresenterProvider | None
    fallback: str  # why the script's presenter is not used ("" when it is, or when none was asked for)

    @property
    def name(self) -> str:
        return self.provider.name if self.provider is not None else "espeak-ng"


def choose_presenter(
    script: ModuleScript, override: str, presenters: Mapping[str, ApiPresenterProvider | None], log: Log
) -> PresenterPlan:
    wanted = (override or script.front.presenter.provider).strip().lower()
    if wanted not in ("none", "heygen", "did"):
        raise ScriptError(
            script.source, [(1, f"presenter {wanted!r} (from the run config) is not none, heygen or did")]
        )
    if wanted == "none":
        return PresenterPlan(None, "")
    provider = presenters.get(wanted)
    if provider is None:
        reason = f"presenter {wanted} is not configured here"
    else:
        available = provider.availability()
        reason = "" if available.available else f"presenter {wanted} is unavailable: {available.reason}"
    if reason:
        log(f"{reason}; the module is narrated by espeak-ng over full-width slides (no talking head)")
        return PresenterPlan(None, reason)
    return PresenterPlan(provider, "")


def presenter_requests(
    module: str,
    script: ModuleScript,
    plan: PresenterPlan,
    settings: AssemblySettings,
    budget_scopes: tuple[str, ...],
) -> list[PresenterRequest]:
    side = min(1080, max(128, 2 * round(0.92 * settings.size[1] / 2)))
    spec = script.front.presenter
    return [
        PresenterRequest(
            module=module,
            scene=scene.title,
            text=scene.narration,
            size=(side, side),
            avatar=spec.avatar,
            voice=spec.voice,
            background=script.front.defaults.theme.background,
            budget_scopes=budget_scopes,
        )
        for scene in script.scenes
    ]


def check_presenter_limits(
    script: ModuleScript, plan: PresenterPlan, requests: list[PresenterRequest]
) -> None:
    """Raise ScriptError naming every scene whose narration breaks the presenter's limits."""
    if plan.provider is None:
        return
    problems = []
    for scene, request in zip(script.scenes, requests):
        try:
            plan.provider.check_request(request)
        except PresenterInputError as error:
            problems.append((scene.line, str(error)))
    if problems:
        raise ScriptError(script.source, problems)


@dataclass
class PresenterSpend:
    """Presenter clips bought in this run: what they reserved (worst case) and what they were charged."""

    charged_usd: float = 0.0
    worst_case_usd: float = 0.0
    overrun_usd: float = 0.0
    bought: int = 0

    def add(self, result: PresenterResult) -> None:
        self.charged_usd += result.cost.api_usd
        self.worst_case_usd += result.reserved_usd
        self.overrun_usd += result.overrun_usd
        self.bought += 1


def fetch_presenter_clips(
    storage: StorageResource,
    plan: PresenterPlan,
    requests: list[PresenterRequest],
    wanted: list[int],
    concurrency: int,
    log: Log,
) -> tuple[dict[int, bytes], PresenterSpend]:
    """Presenter clips of the wanted scenes: from storage, else from the provider (one paid job each, run
    `concurrency` at a time). Returns the clips by scene index and what this run spent on them."""
    provider = plan.provider
    clips: dict[int, bytes] = {}
    todo = []
    for index in wanted:
        key = presenter_key(provider.name, provider.job_key(requests[index]))
        if storage.exists(key):
            clips[index] = storage.read_bytes(key)
        else:
            todo.append(index)
    spend, failures = PresenterSpend(), []
    lock = threading.Lock()

    def fetch(index: int) -> None:
        request = requests[index]
        try:
            result = provider.render_presenter(request, log)
        except (ProviderError, LedgerError) as error:
            with lock:
                failures.append(f"scene {request.scene!r}: {error}")
            return
        storage.write_bytes(presenter_key(provider.name, result.job_key), result.mp4)
        with lock:
            clips[index] = result.mp4
            if result.cost.charged_in_this_run:
                spend.add(result)

    if todo:
        log(
            f"{provider.name}: {len(todo)} presenter clip(s) to make, {len(wanted) - len(todo)} stored already"
        )
        with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="presenter") as pool:
            list(pool.map(fetch, todo))
    if failures:
        raise TrainingError(
            f"{provider.name}: {len(failures)} presenter clip(s) could not be made (the others are "
            "stored and a re-run resumes or retries these without paying twice):\n" + "\n".join(failures)
        )
    return clips, spend


def check_budget(
    ledger: LedgerResource | None, scope: str, budget_usd: float | None, worst_case_usd: float
) -> None:
    """Refuse the module before any presenter job when the worst case of the clips still to make does not fit
    what is left of its budget (each job's reservation checks again, atomically, as it opens)."""
    if ledger is None or budget_usd is None:
        return
    ledger.set_budget(scope, budget_usd)
    budget = ledger.budget(scope)
    left = budget.limit_usd - budget.spent_usd - budget.reserved_usd
    if worst_case_usd > left + 1e-9:
        raise TrainingError(
            f"budget {scope}: the presenter clips still to make could cost up to ${worst_case_usd:.2f} (their "
            f"narration said by the slowest voice) but only ${left:.2f} of ${budget.limit_usd:.2f} is left; "
            "nothing was paid. Raise budget_usd, shorten the narration or use a cheaper presenter"
        )


# --------------------------------------------------------------------------- the module


def price_rows(prices: PricesResource) -> dict[str, float]:
    """USD per second of every presenter price row: the table's `heygen_*`/`did_*` rows and the built-in ones."""
    keys = {k for k in prices.table.api if k.startswith(("heygen_", "did_"))}
    return {key: presenter_list_price(prices.table, key)[0] for key in sorted(keys)}


@dataclass
class ProcessClock:
    """Wall and CPU seconds since it started, the CPU of child processes (scene workers, espeak-ng) included."""

    wall0: float = field(default_factory=time.perf_counter)
    cpu0: float = field(default_factory=time.process_time)
    children0: resource.struct_rusage = field(default_factory=lambda: resource.getrusage(resource.RUSAGE_CHILDREN))

    def wall_s(self) -> float:
        return time.perf_counter() - self.wall0

    def cpu_s(self) -> float:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (time.process_time() - self.cpu0 + (children.ru_utime - self.children0.ru_utime)
                + (children.ru_stime - self.children0.ru_stime))


@dataclass
class ModulePlan:
    """A parsed and checked module: what each scene shows, says and is keyed by, and where the module goes."""

    module: str
    script_uri: str
    script: ModuleScript
    look: Look
    presenter: PresenterPlan
    visuals: list[SceneVisual]
    stills: list[Still]
    requests: list[PresenterRequest]
    keys: list[str]
    module_key: str
    budget_scope: str

    @property
    def prefix(self) -> str:
        return storage_keys.training_module(self.module, self.module_key)


def check_module_name(module: str, script_uri: str) -> None:
    if not MODULE_PATTERN.match(module):
        raise ScriptError(
            script_uri, [(1, f"module name {module!r} must match [A-Za-z0-9_-], 1 to 64 characters")]
        )


def plan_module(module: str, script_uri: str, storage: StorageResource,
                presenters: Mapping[str, ApiPresenterProvider | None], presenter: str, budget_usd: float | None,
                settings: AssemblySettings, log: Log) -> ModulePlan:
    """Parse the script, choose the narrator, fetch every visual and key every scene; nothing is paid yet."""
    check_module_name(module, script_uri)
    script, base = load_script(script_uri)
    look = look_of(script)
    plan = choose_presenter(script, presenter, presenters, log)
    if plan.provider is None:
        check_voice(script, EspeakSpeech())
    visuals = resolve_visuals(script, base, storage, log)
    show = [
        plan.provider is not None and scene.show_presenter and visual.kind != "product"
        for scene, visual in zip(script.scenes, visuals)
    ]
    stills = draw_stills(script, visuals, settings, look, show)
    scope = f"training:{module}"
    requests = presenter_requests(module, script, plan, settings, (scope,) if budget_usd is not None else ())
    check_presenter_limits(script, plan, requests)
    keys = [
        scene_key(scene, visual, still, plan, request, script, settings)
        for scene, visual, still, request in zip(script.scenes, visuals, stills, requests)
    ]
    module_key = _hash(
        {
            "version": MODULE_VERSION,
            "title": script.title,
            "scenes": keys,
            "chapters": [scene.title for scene in script.scenes],
            "settings": settings.fingerprint(),
        }
    )
    return ModulePlan(module, script_uri, script, look, plan, visuals, stills, requests, keys, module_key, scope)


def cached_scenes(storage: StorageResource, keys: list[str]) -> dict[int, SceneRecord]:
    """Scene records already in storage (and readable), by scene index."""
    records = {}
    for index, key in enumerate(keys):
        record = read_training_record(storage, f"{scene_prefix(key)}/scene.json", SceneRecord)
        if record is not None:
            records[index] = record
    return records


def buy_presenter_clips(storage: StorageResource, ledger: LedgerResource | None, plan: ModulePlan,
                        missing: list[int], budget_usd: float | None, concurrency: int,
                        log: Log) -> tuple[dict[int, bytes], PresenterSpend]:
    """Presenter clips of the scenes still to render: refused whole when their worst case does not fit the budget."""
    presenter = plan.presenter
    if presenter.provider is None or not missing:
        return {}, PresenterSpend()
    todo = [i for i in missing
            if not storage.exists(presenter_key(presenter.name, presenter.provider.job_key(plan.requests[i])))]
    check_budget(ledger, plan.budget_scope, budget_usd,
                 sum(presenter.provider.worst_case_usd(plan.requests[i]) for i in todo))
    return fetch_presenter_clips(storage, presenter, plan.requests, missing, concurrency, log)


def render_missing_scenes(storage: StorageResource, plan: ModulePlan, missing: list[int], clips: dict[int, bytes],
                          workers: int, settings: AssemblySettings, records: dict[int, SceneRecord]) -> int:
    """Render and store the scenes not cached, adding their records; returns the characters sent to TTS."""
    script = plan.script
    specs = [
        scene_spec(plan.keys[i], script.scenes[i], plan.stills[i], plan.visuals[i], clips.get(i), script, settings)
        for i in missing
    ]
    tts_chars = 0
    for rendered, index in zip(render_scenes(specs, workers), missing):
        records[index] = save_scene(storage, plan.keys[index], rendered, script.scenes[index].title)
        tts_chars += rendered.tts_chars
    return tts_chars


def module_report(plan: ModulePlan, ordered: list[SceneRecord], files: dict[str, str], *, reused: bool, rendered: int,
                  tts_chars: int, spend: PresenterSpend, cost: CostRecord, rates: dict[str, float],
                  cpu_s: float, wall_s: float, settings: AssemblySettings,
                  file_report: ModuleFileReport) -> ModuleReport:
    script, presenter = plan.script, plan.presenter
    speech_s = sum(record.speech_s for record in ordered)
    presenter_s = speech_s if presenter.provider is not None else 0.0
    own_rate = rates.get(presenter.provider.price_key(), 0.0) if presenter.provider is not None else 0.0
    return ModuleReport(
        module=plan.module,
        title=script.title,
        script=plan.script_uri,
        module_key=plan.module_key,
        prefix=plan.prefix,
        duration_s=sum(record.n_frames for record in ordered) / settings.fps,
        scenes=len(plan.keys),
        scenes_rendered=rendered,
        scenes_reused=len(plan.keys) - rendered,
        reused=reused,
        narrator=presenter.name,
        presenter_fallback=presenter.fallback,
        words=script.words,
        narration_chars=sum(len(scene.narration) for scene in script.scenes),
        tts_chars=tts_chars,
        speech_s=speech_s,
        presenter_s=presenter_s,
        presenter_list_usd=own_rate * presenter_s,
        presenter_charged_usd=spend.charged_usd,
        presenter_clips_bought=spend.bought,
        presenter_worst_case_usd=spend.worst_case_usd,
        presenter_overrun_usd=spend.overrun_usd,
        cpu_s=cpu_s,
        wall_s=wall_s,
        cost_usd=cost.cost_usd,
        estimates_usd={key: rate * speech_s for key, rate in rates.items()},
        sku_fallbacks=[v.fallback for v in plan.visuals if v.fallback],
        files=files,
        video_codec=file_report.video_codec,
        audio_codec=file_report.audio_codec,
        faststart=file_report.faststart,
        chapters=file_report.chapters,
        chapter_titles=list(file_report.chapter_titles),
    )


def build_module(
    module: str,
    script_uri: str,
    storage: StorageResource,
    prices: PricesResource,
    presenters: Mapping[str, ApiPresenterProvider | None] | None = None,
    *,
    ledger: LedgerResource | None = None,
    presenter: str = "",
    workers: int = 0,
    presenter_concurrency: int = 4,
    budget_usd: float | None = None,
    settings: AssemblySettings | None = None,
    log: Log = print,
) -> ModuleReport:
    """Parse, check, render what changed, join and write the module; see the module docstring."""
    clock = ProcessClock()
    settings = settings or AssemblySettings()
    plan = plan_module(module, script_uri, storage, presenters or {}, presenter, budget_usd, settings, log)
    module_record = read_training_record(storage, f"{plan.prefix}/module.json", ModuleRecord)
    records = cached_scenes(storage, plan.keys)
    reused = module_record is not None and len(records) == len(plan.keys)
    missing = [index for index in range(len(plan.keys)) if index not in records]
    log(
        f"{module}: {len(plan.script.scenes)} scenes, {plan.script.words} words; {len(missing)} to render, "
        f"{len(records)} cached; narrated by {plan.presenter.name}"
        + ("; the module itself is stored already" if reused else "")
    )

    clips, spend = buy_presenter_clips(storage, ledger, plan, missing, budget_usd, presenter_concurrency, log)
    tts_chars = render_missing_scenes(storage, plan, missing, clips, workers, settings, records)
    ordered = [records[i] for i in range(len(plan.keys))]
    if reused:
        files = module_record.files
    else:
        files = write_module(storage, plan.prefix, plan.script, ordered, settings, plan.look)
    file_report = inspect_module(storage.read_bytes(files["module.mp4"]))

    wall_s, cpu_s = clock.wall_s(), clock.cpu_s()
    cost = prices.table.cost(
        provider="training", model=plan.presenter.name, cpu_s=cpu_s, wall_s=wall_s, api_usd=spend.charged_usd
    )
    if ledger is not None and not reused:
        # Compute goes into the ledger's charges like every CPU render (presenter jobs charge themselves).
        ledger.record_render_charge(
            f"training:{module}:{plan.module_key}", "training", cost.cost_usd - spend.charged_usd,
            f"module:{module}"[:64]
        )
    report = module_report(plan, ordered, files, reused=reused, rendered=len(missing), tts_chars=tts_chars,
                           spend=spend, cost=cost, rates=price_rows(prices), cpu_s=cpu_s,
                           wall_s=wall_s, settings=settings, file_report=file_report)
    log(
        f"{module}: {report.duration_s:.1f}s module in {wall_s:.1f}s ({report.realtime_factor:.1f}x real time), "
        f"{report.scenes_rendered} scene(s) rendered, {report.scenes_reused} reused; cost ${cost.cost_usd:.4f}"
    )
    return report


def scene_key(
    scene,
    visual: SceneVisual,
    still: Still,
    plan: PresenterPlan,
    request: PresenterRequest,
    script: ModuleScript,
    settings: AssemblySettings,
) -> str:
    defaults = script.front.defaults
    if plan.provider is not None:
        narration = {"presenter": plan.provider.name, "clip": plan.provider.job_key(request)}
    else:
        narration = {
            "tts": "espeak-ng",
            "voice": script.front.voice,
            "wpm": defaults.words_per_minute,
            "text": scene.narration,
        }
    return _hash(
        {
            "version": SCENE_VERSION,
            "narration": narration,
            "caption": scene.caption_text,
            "visual": visual.identity,
            "inset": still.presenter_box,
            "look": defaults.theme.model_dump(),
            "lead_in_s": defaults.lead_in_s,
            "tail_s": defaults.tail_s,
            "settings": settings.fingerprint(),
        }
    )


def scene_spec(
    key: str,
    scene,
    still: Still,
    visual: SceneVisual,
    presenter_clip: bytes | None,
    script: ModuleScript,
    settings: AssemblySettings,
) -> SceneSpec:
    defaults = script.front.defaults
    return SceneSpec(
        key=key,
        title=scene.title,
        still=still.rgb,
        narration=scene.narration,
        caption=scene.caption_text,
        voice=script.front.voice,
        words_per_minute=defaults.words_per_minute,
        lead_in_s=defaults.lead_in_s,
        tail_s=defaults.tail_s,
        settings=settings,
        loop_clip=visual.clip if visual.kind == "product" else None,
        loop_box=still.loop_box,
        presenter_clip=presenter_clip,
        presenter_box=still.presenter_box if presenter_clip is not None else None,
    )


def write_module(
    storage: StorageResource,
    prefix: str,
    script: ModuleScript,
    records: list[SceneRecord],
    settings: AssemblySettings,
    look,
) -> dict[str, str]:
    """Join the scenes, write the video, captions, chapters and poster, then module.json (the commit point)."""
    chapters, cues, start = [], [], 0.0
    for scene, record in zip(script.scenes, records):
        length = record.n_frames / settings.fps
        chapters.append(Chapter(round(start, 3), round(start + length, 3), scene.title))
        cues += shifted(list(record.cues), start)
        start += length
    mp4 = assemble(
        [load_scene(storage, record) for record in records],
        chapters,
        settings,
        {"title": script.title, "comment": f"{len(chapters)} chapters"},
    )
    minutes, seconds = divmod(round(start), 60)
    poster = render_title_card(
        script.title, f"{len(chapters)} chapters \u00b7 {minutes}:{seconds:02d}", settings.size, look
    )
    outputs = {
        "module.mp4": mp4,
        "captions.vtt": webvtt(cues).encode(),
        "chapters.vtt": chapters_webvtt(chapters).encode(),
        "chapters.json": chapters_json(chapters).encode(),
        "poster.jpg": encode_jpeg(poster),
    }
    files = {}
    for name, data in outputs.items():
        storage.write_bytes(f"{prefix}/{name}", data)
        files[name] = f"{prefix}/{name}"
    module_record = ModuleRecord(files=files, title=script.title, scenes=tuple(r.key for r in records),
                                 created_at=datetime.now(UTC))
    storage.write_json(f"{prefix}/module.json", module_record.to_json())
    return files


# --------------------------------------------------------------------------- the asset


def estimates_markdown(report: ModuleReport) -> str:
    compute_usd = report.cost_usd - report.presenter_charged_usd
    rows = ["| presenter price row | USD for this module |", "|---|---|"]
    rows += [f"| {key} | {usd:.2f} |" for key, usd in sorted(report.estimates_usd.items())]
    return (
        "\n".join(rows) + f"\n\nfor {report.speech_s / 60:.1f} min of narration; compute ${compute_usd:.4f}"
    )


def format_check(report: ModuleReport) -> dg.AssetCheckResult:
    problems = []
    if (report.video_codec, report.audio_codec) != ("h264", "aac"):
        problems.append(f"streams are {report.video_codec}/{report.audio_codec}, not h264/aac")
    if not report.faststart:
        problems.append("index is not at the front (no faststart)")
    if report.chapters != report.scenes:
        problems.append(f"{report.chapters} chapters for {report.scenes} scenes")
    return dg.AssetCheckResult(
        check_name="training_module_format",
        passed=not problems,
        description="; ".join(problems) or f"h264 + aac, faststart, {report.chapters} chapters",
        metadata={
            "chapters": dg.MetadataValue.int(report.chapters),
            "duration_s": dg.MetadataValue.float(round(report.duration_s, 3)),
        },
    )


@dg.asset(
    partitions_def=module_partitions,
    group_name="training",
    kinds={"mp4"},
    check_specs=[
        dg.AssetCheckSpec(
            "training_module_format",
            asset="training_module",
            description="H.264 + AAC, faststart, one chapter per scene.",
        )
    ],
    description="A narrated training video (captions, chapters, poster) from the module script named in the run "
    "config; the partition key is the module name. Only scenes that changed are rendered.",
)
def training_module(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    storage: StorageResource,
    prices: PricesResource,
    ledger: LedgerResource,
    heygen: HeyGenPresenter,
    did: DidPresenter,
) -> dg.MaterializeResult:
    try:
        report = build_module(
            context.partition_key,
            config.script,
            storage,
            prices,
            {"heygen": heygen, "did": did},
            ledger=ledger,
            presenter=config.presenter,
            workers=config.workers,
            presenter_concurrency=config.presenter_concurrency,
            budget_usd=config.budget_usd,
            log=context.log.info,
        )
    except (ScriptError, TrainingError) as error:
        raise dg.Failure(description=str(error)) from None
    metadata = {
        "provider": "training",
        "narrator": report.narrator,
        "presenter_fallback": report.presenter_fallback or "none",
        "module_key": report.module_key,
        "duration_s": dg.MetadataValue.float(round(report.duration_s, 3)),
        "scenes": dg.MetadataValue.int(report.scenes),
        "scenes_rendered": dg.MetadataValue.int(report.scenes_rendered),
        "scenes_reused": dg.MetadataValue.int(report.scenes_reused),
        "words": dg.MetadataValue.int(report.words),
        "tts_chars": dg.MetadataValue.int(report.tts_chars),
        "narration_s": dg.MetadataValue.float(round(report.speech_s, 2)),
        "presenter_s": dg.MetadataValue.float(round(report.presenter_s, 2)),
        "presenter_list_usd": dg.MetadataValue.float(round(report.presenter_list_usd, 4)),
        "api_usd": dg.MetadataValue.float(round(report.presenter_charged_usd, 4)),
        "presenter_clips_bought": dg.MetadataValue.int(report.presenter_clips_bought),
        # Estimated (the worst case reserved before paying) beside actual (what the delivered clips cost).
        "presenter_worst_case_usd": dg.MetadataValue.float(round(report.presenter_worst_case_usd, 4)),
        "presenter_charged_usd": dg.MetadataValue.float(round(report.presenter_charged_usd, 4)),
        "presenter_overrun_usd": dg.MetadataValue.float(round(report.presenter_overrun_usd, 4)),
        "cpu_s": dg.MetadataValue.float(round(report.cpu_s, 3)),
        "wall_s": dg.MetadataValue.float(round(report.wall_s, 3)),
        "realtime_factor": dg.MetadataValue.float(round(report.realtime_factor, 2)),
        "cost_usd": dg.MetadataValue.float(report.cost_usd),
        **{
            f"estimate_{key}_usd": dg.MetadataValue.float(round(usd, 2))
            for key, usd in report.estimates_usd.items()
        },
        "estimates": dg.MetadataValue.md(estimates_markdown(report)),
        "sku_fallbacks": "; ".join(report.sku_fallbacks) or "none",
        "reused": report.reused,
        "video": dg.MetadataValue.url(storage.url(report.files["module.mp4"])),
        "captions": dg.MetadataValue.url(storage.url(report.files["captions.vtt"])),
        "chapters": dg.MetadataValue.url(storage.url(report.files["chapters.vtt"])),
        "poster": dg.MetadataValue.url(storage.url(report.files["poster.jpg"])),
    }
    return dg.MaterializeResult(metadata=metadata, check_results=[format_check(report)])
