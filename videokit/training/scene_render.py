"""Render training scenes: narration, picture and captions of each scene, in worker processes.

A SceneSpec is everything one scene needs (plain data, so it travels to a worker): the still behind it, a
product clip to loop or a presenter clip, the narration text and voice. Rendering makes the speech (espeak-ng,
or the presenter clip's own narration), sizes the scene to the speech plus padding, encodes picture and sound
(module_assembly) and times the captions against the speech. Workers are started with `spawn`, like the
campaign render pool, so it behaves the same under Dagster, pytest and a script; one scene renders inline.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from videokit.training.captions import Cue, split_cues, time_cues
from videokit.training.module_assembly import (
    AssemblySettings,
    ScenePieces,
    clip_loop_frames,
    encode_audio,
    frames_part,
    presenter_frames,
    repeated_parts,
    scene_samples,
    still_parts,
)
from videokit.training.narration import (
    EspeakSpeech,
    NarrationError,
    Speech,
    SpeechProvider,
    pauses,
    speech_from_video,
)

SPEECH_PROVIDERS: dict[str, type] = {"espeak-ng": EspeakSpeech}


@dataclass(frozen=True)
class SceneSpec:
    key: str  # the scene's content hash
    title: str
    still: np.ndarray  # (h, w, 3) RGB: the slide, picture or card the scene shows
    narration: str
    caption: str
    voice: str
    words_per_minute: int
    lead_in_s: float
    tail_s: float
    settings: AssemblySettings
    speech_provider: str = "espeak-ng"
    loop_clip: bytes | None = None  # a product clip looped inside loop_box
    loop_box: tuple[int, int, int, int] | None = None
    presenter_clip: bytes | None = None  # narrates the scene; shown in presenter_box when that is set
    presenter_box: tuple[int, int, int, int] | None = None


@dataclass
class RenderedScene:
    key: str
    pieces: ScenePieces
    speech_s: float
    cues: list[Cue]
    tts_chars: int  # characters this render sent to a speech provider
    cpu_s: float
    pid: int = field(default_factory=os.getpid)


def speech_for(spec: SceneSpec) -> tuple[Speech, int]:
    """The scene's narration and how many characters were synthesized for it."""
    if spec.presenter_clip is not None:
        speech = speech_from_video(spec.presenter_clip, spec.settings.sample_rate)
        if speech is None:
            raise NarrationError(f"scene {spec.title!r}: the presenter clip has no audio")
        return speech, 0
    provider: SpeechProvider = SPEECH_PROVIDERS[spec.speech_provider]()
    speech = provider.synthesize(spec.narration, spec.voice, spec.words_per_minute).trimmed()
    return speech, len(spec.narration)


def render_scene(spec: SceneSpec) -> RenderedScene:
    cpu0 = time.process_time()
    settings = spec.settings
    speech, tts_chars = speech_for(spec)
    n_frames = settings.scene_frames(spec.lead_in_s + speech.duration_s + spec.tail_s)
    if spec.presenter_clip is not None and spec.presenter_box is not None:
        frames = presenter_frames(
            spec.still, spec.presenter_clip, spec.presenter_box, n_frames, spec.lead_in_s, settings
        )
        parts = frames_part(frames, n_frames, settings)
    elif spec.loop_clip is not None and spec.loop_box is not None:
        parts = repeated_parts(
            clip_loop_frames(spec.still, spec.loop_clip, spec.loop_box, settings), n_frames, settings
        )
    else:
        parts = still_parts(spec.still, n_frames, settings)
    resampled = speech.resampled(settings.sample_rate)
    samples = scene_samples(resampled, settings.samples_for(n_frames), spec.lead_in_s, settings.sample_rate)
    audio = encode_audio(samples, settings)
    cues = time_cues(split_cues(spec.caption), spec.lead_in_s, speech.duration_s, pauses(resampled))
    pieces = ScenePieces(parts=parts, audio=audio, n_frames=n_frames)
    return RenderedScene(spec.key, pieces, speech.duration_s, cues, tts_chars, time.process_time() - cpu0)


def render_scenes(specs: Sequence[SceneSpec], workers: int = 0) -> list[RenderedScene]:
    """Render every scene, `workers` processes at a time (0: one per CPU this process may use); in order."""
    if not specs:
        return []
    workers = min(workers or len(os.sched_getaffinity(0)), len(specs))
    if workers <= 1:
        return [render_scene(spec) for spec in specs]
    # Longest narration first, so the last worker to finish is not the one that drew the longest scene.
    order = sorted(range(len(specs)), key=lambda i: -len(specs[i].narration))
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {index: pool.submit(render_scene, specs[index]) for index in order}
        return [futures[index].result() for index in range(len(specs))]
