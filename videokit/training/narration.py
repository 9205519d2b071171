"""Narration: text to speech behind one contract, and the mono PCM it yields.

A speech provider has a `name`, says whether it can run here (`availability`), checks a voice before anything
is rendered (`check_voice`, raising VoiceUnknown with the voices it knows), and turns text into `Speech`
(16-bit mono PCM at the provider's rate). The offline default is Debian's `espeak-ng`, which writes WAV at
22.05 kHz; paragraphs are joined with SSML breaks so a new paragraph sounds like one. Talking-head APIs
narrate inside their own clips; `speech_from_video` takes that narration out of the clip.
"""

from __future__ import annotations

import functools
import html
import io
import re
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import av
import numpy as np

SILENCE_LEVEL = 0.01  # of full scale: quieter than this counts as silence when trimming and finding pauses


class NarrationError(RuntimeError):
    """Speech could not be made; the message says why (missing program, failed synthesis)."""


class VoiceUnknown(ValueError):
    """The script asks for a voice the provider does not have; the message lists some it has."""


@dataclass(frozen=True)
class Speech:
    samples: np.ndarray  # (n,) int16, mono
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate

    def resampled(self, rate: int) -> Speech:
        if rate == self.sample_rate:
            return self
        return Speech(resample(self.samples, self.sample_rate, rate), rate)

    def trimmed(self, margin_s: float = 0.02) -> Speech:
        """Leading and trailing silence cut off (a margin kept), so scene padding alone sets the pauses."""
        loud = np.flatnonzero(np.abs(self.samples.astype(np.int32)) > SILENCE_LEVEL * 32767)
        if loud.size == 0:
            return Speech(self.samples[:0], self.sample_rate)
        margin = round(margin_s * self.sample_rate)
        start, end = max(0, loud[0] - margin), min(len(self.samples), loud[-1] + 1 + margin)
        return Speech(self.samples[start:end], self.sample_rate)


@runtime_checkable
class SpeechProvider(Protocol):
    name: str

    def availability(self) -> tuple[bool, str]: ...

    def check_voice(self, voice: str) -> None: ...

    def synthesize(self, text: str, voice: str, words_per_minute: int) -> Speech: ...


# --------------------------------------------------------------------------- PCM and WAV


def read_wav(data: bytes) -> Speech:
    """16-bit PCM WAV (mono, or the first channel of more) as Speech."""
    try:
        with wave.open(io.BytesIO(data)) as reader:
            if reader.getsampwidth() != 2:
                raise NarrationError(f"WAV has {8 * reader.getsampwidth()}-bit samples; 16-bit expected")
            frames = np.frombuffer(reader.readframes(reader.getnframes()), "<i2")
            channels, rate = reader.getnchannels(), reader.getframerate()
    except (wave.Error, EOFError) as error:
        raise NarrationError(f"not a readable WAV file ({len(data)} bytes): {error}") from None
    return Speech(frames.reshape(-1, channels)[:, 0].astype(np.int16), rate)


def wav_bytes(speech: Speech) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(speech.sample_rate)
        writer.writeframes(speech.samples.astype("<i2").tobytes())
    return buffer.getvalue()


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Mono int16 PCM resampled with FFmpeg's resampler; the length is exactly round(n * to / from)."""
    if from_rate == to_rate or samples.size == 0:
        return samples.astype(np.int16)
    resampler = av.AudioResampler(format="s16", layout="mono", rate=to_rate)
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(samples.astype(np.int16)[None, :]), format="s16", layout="mono"
    )
    frame.sample_rate = from_rate
    frame.pts = 0
    chunks = [out.to_ndarray().reshape(-1) for out in resampler.resample(frame)]
    chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    out = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    wanted = round(len(samples) * to_rate / from_rate)
    if len(out) < wanted:
        out = np.concatenate([out, np.zeros(wanted - len(out), np.int16)])
    return out[:wanted].astype(np.int16)


def speech_from_video(data: bytes, rate: int) -> Speech | None:
    """The first audio stream of a video file, mixed down to mono int16 at `rate`; None without audio."""
    with av.open(io.BytesIO(data)) as container:
        if not container.streams.audio:
            return None
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        chunks = []
        for frame in container.decode(container.streams.audio[0]):
            chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(frame)]
        chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    samples = np.concatenate(chunks).astype(np.int16) if chunks else np.zeros(0, np.int16)
    return Speech(samples, rate)


def pauses(speech: Speech, min_pause_s: float = 0.15, window_s: float = 0.02) -> list[tuple[float, float]]:
    """Quiet stretches of at least `min_pause_s`, as (start_s, end_s): where sentences and clauses end."""
    window = max(1, round(window_s * speech.sample_rate))
    count = len(speech.samples) // window
    if count == 0:
        return []
    levels = np.abs(speech.samples[: count * window].astype(np.int32)).reshape(count, window).max(axis=1)
    quiet = levels <= SILENCE_LEVEL * 32767
    found, start = [], None
    for index, is_quiet in enumerate(np.append(quiet, False)):
        if is_quiet and start is None:
            start = index
        elif not is_quiet and start is not None:
            if (index - start) * window_s >= min_pause_s:
                found.append((start * window_s, index * window_s))
            start = None
    return found


# --------------------------------------------------------------------------- espeak-ng


@dataclass(frozen=True)
class VoiceInfo:
    language: str
    name: str
    file: str
    other_languages: tuple[str, ...] = ()

    @property
    def needs_mbrola(self) -> bool:
        return self.file.startswith("mb/")


def ssml_for(text: str, paragraph_pause_ms: int) -> str:
    """The narration as SSML: text escaped, paragraphs (blank-line separated) joined by a break."""
    paragraphs = [html.escape(" ".join(p.split()), quote=False) for p in text.split("\n\n") if p.strip()]
    return "<speak>" + f'<break time="{paragraph_pause_ms}ms"/>'.join(paragraphs) + "</speak>"


@functools.lru_cache(maxsize=8)
def _listed_voices(binary: str, kind: str) -> tuple[VoiceInfo, ...]:
    argument = "--voices" if kind == "languages" else f"--voices={kind}"
    result = subprocess.run([binary, argument], capture_output=True, text=True, timeout=30, check=False)
    voices = []
    for line in result.stdout.splitlines()[1:]:
        parts = line.split()
        # Pty Language Age/Gender VoiceName File [Other Languages, as "(en-gb 3)(en 2)"]
        if len(parts) >= 5:
            others = tuple(re.findall(r"\(([\w-]+) \d+\)", " ".join(parts[5:])))
            voices.append(VoiceInfo(language=parts[1], name=parts[3], file=parts[4], other_languages=others))
    return tuple(voices)


@functools.lru_cache(maxsize=64)
def _voice_speaks(binary: str, voice: str) -> bool:
    """Whether the voice really synthesizes (MBROLA voices are listed even when MBROLA is missing)."""
    with tempfile.TemporaryDirectory(prefix="skuvid-voice-") as folder:
        result = subprocess.run(
            [binary, "-v", voice, "-w", str(Path(folder) / "probe.wav"), "ok"],
            capture_output=True,
            timeout=30,
            check=False,
        )
    return result.returncode == 0


class EspeakSpeech:
    """Speech provider `espeak-ng`: offline, fast (minutes of speech per second), WAV at 22.05 kHz."""

    name = "espeak-ng"

    def __init__(self, binary: str = "espeak-ng", paragraph_pause_ms: int = 700, timeout_s: float = 120.0):
        self.binary = binary
        self.paragraph_pause_ms = paragraph_pause_ms
        self.timeout_s = timeout_s

    def availability(self) -> tuple[bool, str]:
        if shutil.which(self.binary) is None:
            return False, (
                f"{self.binary} is not installed (Debian package espeak-ng; "
                "scripts/system-deps.sh installs it)"
            )
        return True, "available"

    def _require(self) -> None:
        available, reason = self.availability()
        if not available:
            raise NarrationError(reason)

    def voices(self) -> tuple[VoiceInfo, ...]:
        self._require()
        return _listed_voices(self.binary, "languages")

    def check_voice(self, voice: str) -> None:
        """Raise VoiceUnknown unless `voice` (a language code or voice file such as `en-us` or `gmw/en-US`,
        optionally `+variant`) speaks."""
        self._require()
        base, _, variant = voice.partition("+")
        voices = self.voices()
        known = {v.language.lower() for v in voices} | {o.lower() for v in voices for o in v.other_languages}
        known |= {v.file.lower() for v in voices} | {v.file.rsplit("/", 1)[-1].lower() for v in voices}
        if base.lower() not in known:
            languages = sorted({v.language for v in voices if not v.needs_mbrola})
            english = [name for name in languages if name.startswith("en")]
            hint = ", ".join(english + [name for name in languages if not name.startswith("en")][:12])
            raise VoiceUnknown(
                f"unknown voice {voice!r}; espeak-ng voices include {hint}, ... "
                f"(`{self.binary} --voices` lists all)"
            )
        if variant:
            variants = _listed_voices(self.binary, "variant")
            names = {v.name.lower() for v in variants} | {v.file.rsplit("/", 1)[-1].lower() for v in variants}
            if variant.lower() not in names:
                raise VoiceUnknown(
                    f"unknown voice variant {variant!r} in {voice!r}; variants include "
                    f"{', '.join(sorted(v.file.rsplit('/', 1)[-1] for v in variants)[:12])}, ..."
                )
        if not _voice_speaks(self.binary, voice):
            raise VoiceUnknown(
                f"voice {voice!r} is listed but does not speak here "
                "(MBROLA voices need the mbrola program and voice data)"
            )

    def synthesize(self, text: str, voice: str, words_per_minute: int) -> Speech:
        self._require()
        document = ssml_for(text, self.paragraph_pause_ms)
        with tempfile.TemporaryDirectory(prefix="skuvid-tts-") as folder:
            path = Path(folder) / "speech.wav"
            command = [
                self.binary,
                "-m",
                "-v",
                voice,
                "-s",
                str(words_per_minute),
                "--stdin",
                "-w",
                str(path),
            ]
            try:
                result = subprocess.run(
                    command, input=document.encode(), capture_output=True, timeout=self.timeout_s, check=False
                )
            except subprocess.TimeoutExpired:
                raise NarrationError(f"{self.binary} took longer than {self.timeout_s:g}s") from None
            if result.returncode != 0 or not path.exists():
                message = result.stderr.decode(errors="replace").strip()[:300]
                raise NarrationError(f"{self.binary} -v {voice} failed (exit {result.returncode}): {message}")
            return read_wav(path.read_bytes())


def synthesize_all(
    provider: SpeechProvider, texts: Sequence[str], voice: str, words_per_minute: int, workers: int = 4
) -> list[Speech]:
    """Speech for every text, `workers` syntheses at a time (each provider call runs its own process)."""
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="tts") as pool:
        return list(pool.map(lambda text: provider.synthesize(text, voice, words_per_minute), texts))
