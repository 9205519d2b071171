"""Random-weight diffusers pipelines for every model family the GPU providers run, built offline.

`build_*` assembles a pipeline from component configs: the tiny ones here (the sizes diffusers' own tests
use) or the published full-size ones (bench/gpu_clip.py). Tokenizers come from an in-code vocabulary, so
nothing is downloaded. `save_*` writes a tiny pipeline with save_pretrained, laid out like a hub repo, and
returns the folder: a resource given it as `local_path` loads it through `from_pretrained`, the same code
path as a hub id. Random weights make noise, not pictures; shapes, dtypes and timings are real.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderKLCogVideoX,
    AutoencoderKLHunyuanVideo15,
    AutoencoderKLWan,
    CogVideoXDDIMScheduler,
    CogVideoXImageToVideoPipeline,
    CogVideoXTransformer3DModel,
    DiffusionPipeline,
    FlowMatchEulerDiscreteScheduler,
    FluxKontextPipeline,
    FluxPipeline,
    FluxTransformer2DModel,
    HunyuanVideo15ImageToVideoPipeline,
    HunyuanVideo15Transformer3DModel,
    UniPCMultistepScheduler,
    WanImageToVideoPipeline,
    WanTransformer3DModel,
    WanVACEPipeline,
    WanVACETransformer3DModel,
)
from diffusers.guiders import ClassifierFreeGuidance
from tokenizers.pre_tokenizers import ByteLevel
from transformers import (
    ByT5Tokenizer,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTokenizer,
    Qwen2_5_VLTextConfig,
    Qwen2_5_VLTextModel,
    Qwen2Tokenizer,
    SiglipImageProcessor,
    SiglipVisionConfig,
    SiglipVisionModel,
    T5Config,
    T5EncoderModel,
    T5Tokenizer,
    UMT5Config,
    UMT5EncoderModel,
)

Config = dict[str, Any]


# --------------------------------------------------------------------------- tokenizers


def t5_tokenizer(model_max_length: int = 512) -> T5Tokenizer:
    """A unigram T5 tokenizer over single characters: every prompt tokenizes, nothing is unknown."""
    specials = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    alphabet = string.ascii_letters + string.digits + string.punctuation
    characters = [(character, -3.0) for character in alphabet]
    word_starts = [("\u2581" + character, -2.5) for character in string.ascii_letters]
    vocab = specials + word_starts + characters
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=model_max_length)


def clip_tokenizer() -> CLIPTokenizer:
    """A byte-level BPE CLIP tokenizer with no merges: every byte is a token, inside or ending a word."""
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for symbol in sorted(ByteLevel.alphabet()):
        vocab.setdefault(symbol, len(vocab))
        vocab.setdefault(symbol + "</w>", len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


QWEN_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
# The shape of Qwen2's chat template: system and user turns, then the assistant's turn opened.
QWEN_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def qwen_tokenizer() -> Qwen2Tokenizer:
    """A byte-level BPE Qwen2 tokenizer with no merges and Qwen's chat markers."""
    vocab = {symbol: index for index, symbol in enumerate(sorted(ByteLevel.alphabet()))}
    for special in QWEN_SPECIALS:
        vocab[special] = len(vocab)
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=[], unk_token=None, bos_token=None, eos_token="<|im_end|>",
                               pad_token="<|endoftext|>")
    tokenizer.chat_template = QWEN_CHAT_TEMPLATE
    return tokenizer


# --------------------------------------------------------------------------- architectures


@dataclass(frozen=True)
class FluxArchitecture:
    transformer: Config
    vae: Config
    clip: Config
    t5: Config


@dataclass(frozen=True)
class WanArchitecture:
    transformer: Config
    vae: Config
    text_encoder: Config
    # WanImageToVideoPipeline settings: Wan2.2 TI2V conditions by expanded timesteps and has no image encoder.
    pipeline: Config = field(default_factory=dict)


@dataclass(frozen=True)
class HunyuanVideo15Architecture:
    transformer: Config
    vae: Config
    text_encoder: Config  # Qwen2.5-VL's text model
    text_encoder_2: Config  # ByT5
    image_encoder: Config  # SigLIP
    image_size: int  # SigLIP's input size
    guidance: float


@dataclass(frozen=True)
class CogVideoXArchitecture:
    transformer: Config
    vae: Config
    text_encoder: Config


TINY_T5: Config = {
    "vocab_size": 200, "d_model": 32, "d_kv": 8, "d_ff": 37, "num_layers": 2, "num_heads": 4,
    "relative_attention_num_buckets": 8,
}

TINY_FLUX = FluxArchitecture(
    transformer={
        "patch_size": 1, "in_channels": 4, "num_layers": 1, "num_single_layers": 1, "attention_head_dim": 16,
        "num_attention_heads": 2, "joint_attention_dim": 32, "pooled_projection_dim": 32,
        "axes_dims_rope": [4, 4, 8],
    },
    vae={
        "sample_size": 32, "in_channels": 3, "out_channels": 3, "block_out_channels": (4,),
        "layers_per_block": 1, "latent_channels": 1, "norm_num_groups": 1, "use_quant_conv": False,
        "use_post_quant_conv": False, "shift_factor": 0.0609, "scaling_factor": 1.5035,
    },
    clip={
        "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1, "hidden_size": 32, "intermediate_size": 37,
        "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 600, "projection_dim": 32,
        "max_position_embeddings": 77,
    },
    t5=TINY_T5,
)

_TINY_WAN_VAE: Config = {
    "base_dim": 3, "z_dim": 16, "dim_mult": [1, 1, 1, 1], "num_res_blocks": 1,
    "temperal_downsample": [False, True, True],
}
_TINY_WAN_TRANSFORMER: Config = {
    "patch_size": (1, 2, 2), "num_attention_heads": 2, "attention_head_dim": 12, "text_dim": 32,
    "freq_dim": 256, "ffn_dim": 32, "num_layers": 2, "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads", "rope_max_seq_len": 32,
}

TINY_WAN_VACE = WanArchitecture(
    transformer=_TINY_WAN_TRANSFORMER | {
        "in_channels": 16, "out_channels": 16, "num_layers": 3, "vace_layers": [0, 2], "vace_in_channels": 96,
    },
    vae=_TINY_WAN_VAE,
    text_encoder=TINY_T5,
)

TINY_WAN_TI2V = WanArchitecture(
    transformer=_TINY_WAN_TRANSFORMER | {"in_channels": 48, "out_channels": 48},
    vae=_TINY_WAN_VAE | {
        "z_dim": 48, "in_channels": 12, "out_channels": 12, "is_residual": True, "patch_size": 2,
        "latents_mean": [0.0] * 48, "latents_std": [1.0] * 48, "scale_factor_spatial": 16,
        "scale_factor_temporal": 4,
    },
    text_encoder=TINY_T5,
    pipeline={"expand_timesteps": True},
)


# Wan2.2-I2V-A14B: noise, the image's latents and a 4-channel first-frame mask in; two experts.
TINY_WAN_I2V_A14B = WanArchitecture(
    transformer=_TINY_WAN_TRANSFORMER | {"in_channels": 36, "out_channels": 16},
    vae=_TINY_WAN_VAE,
    text_encoder=TINY_T5,
    pipeline={"boundary_ratio": 0.9},
)

TINY_HUNYUAN_I2V = HunyuanVideo15Architecture(
    transformer={
        "in_channels": 9, "out_channels": 4, "num_attention_heads": 2, "attention_head_dim": 8, "num_layers": 2,
        "num_refiner_layers": 1, "mlp_ratio": 2.0, "text_embed_dim": 32, "text_embed_2_dim": 32,
        "image_embed_dim": 32, "rope_axes_dim": (2, 2, 4), "target_size": 64,
    },
    vae={"latent_channels": 4, "block_out_channels": (16,) * 5, "layers_per_block": 1},
    text_encoder={
        "vocab_size": 300, "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 3,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 2048,
        "rope_scaling": {"type": "default", "mrope_section": [1, 1, 2]}, "bos_token_id": None,
        "eos_token_id": 258,
    },
    text_encoder_2=TINY_T5 | {"vocab_size": 384},
    image_encoder={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4,
                   "image_size": 32, "patch_size": 8},
    image_size=32,
    guidance=6.0,
)


def tiny_cogvideox(width: int, height: int, frames: int) -> CogVideoXArchitecture:
    """CogVideoX-I2V's learned positional embeddings fix the resolution and length it generates at."""
    return CogVideoXArchitecture(
        transformer={
            "num_attention_heads": 2, "attention_head_dim": 16, "in_channels": 8, "out_channels": 4,
            "time_embed_dim": 2, "text_embed_dim": 32, "num_layers": 2, "sample_width": width // 8,
            "sample_height": height // 8, "sample_frames": frames, "patch_size": 2,
            "temporal_compression_ratio": 4, "max_text_seq_length": 16,
            "use_rotary_positional_embeddings": True, "use_learned_positional_embeddings": True,
        },
        vae={
            "in_channels": 3, "out_channels": 3, "down_block_types": ("CogVideoXDownBlock3D",) * 4,
            "up_block_types": ("CogVideoXUpBlock3D",) * 4, "block_out_channels": (8, 8, 8, 8),
            "latent_channels": 4, "layers_per_block": 1, "norm_num_groups": 2,
            "temporal_compression_ratio": 4,
        },
        text_encoder=TINY_T5,
    )


# --------------------------------------------------------------------------- builders


@contextmanager
def initialised_as(dtype: torch.dtype, device: str) -> Iterator[None]:
    """Create parameters directly in `dtype` on `device`: full-size text encoders would not fit twice."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous)


def _seeded(build: Callable[[], torch.nn.Module], seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build().eval().requires_grad_(False)


def build_flux(arch: FluxArchitecture = TINY_FLUX, *, kontext: bool = False,
               dtype: torch.dtype = torch.float32, device: str = "cpu") -> FluxPipeline:
    pipeline_class = FluxKontextPipeline if kontext else FluxPipeline
    with initialised_as(dtype, device):
        return pipeline_class(
            scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True),
            vae=_seeded(lambda: AutoencoderKL(**arch.vae)),
            text_encoder=_seeded(lambda: CLIPTextModel(CLIPTextConfig(**arch.clip))),
            tokenizer=clip_tokenizer(),
            text_encoder_2=_seeded(lambda: T5EncoderModel(T5Config(**arch.t5))),
            tokenizer_2=t5_tokenizer(),
            transformer=_seeded(lambda: FluxTransformer2DModel(**arch.transformer)),
            image_encoder=None,
            feature_extractor=None,
        )


def _wan_parts(arch: WanArchitecture, transformer_class: type, dtype: torch.dtype, device: str) -> dict:
    with initialised_as(dtype, device):
        parts = {
            "tokenizer": t5_tokenizer(),
            "text_encoder": _seeded(lambda: UMT5EncoderModel(UMT5Config(**arch.text_encoder))),
            "scheduler": UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                                 flow_shift=3.0),
            "transformer": _seeded(lambda: transformer_class(**arch.transformer)),
        }
    # Wan's VAE stays in float32, as the `wan` provider loads it whatever the pipeline's dtype.
    with initialised_as(torch.float32, device):
        parts["vae"] = _seeded(lambda: AutoencoderKLWan(**arch.vae))
    return parts


def build_wan_vace(arch: WanArchitecture = TINY_WAN_VACE, *, dtype: torch.dtype = torch.float32,
                   device: str = "cpu") -> WanVACEPipeline:
    return WanVACEPipeline(**_wan_parts(arch, WanVACETransformer3DModel, dtype, device))


def build_wan_i2v(arch: WanArchitecture = TINY_WAN_TI2V, *, dtype: torch.dtype = torch.float32,
                  device: str = "cpu") -> WanImageToVideoPipeline:
    return WanImageToVideoPipeline(
        **_wan_parts(arch, WanTransformer3DModel, dtype, device),
        image_encoder=None,
        image_processor=None,
        **arch.pipeline,
    )


def build_wan_i2v_a14b(arch: WanArchitecture = TINY_WAN_I2V_A14B, *, dtype: torch.dtype = torch.float32,
                       device: str = "cpu") -> WanImageToVideoPipeline:
    parts = _wan_parts(arch, WanTransformer3DModel, dtype, device)
    with initialised_as(dtype, device):
        parts["transformer_2"] = _seeded(lambda: WanTransformer3DModel(**arch.transformer), seed=1)
    return WanImageToVideoPipeline(**parts, image_encoder=None, image_processor=None, **arch.pipeline)


def build_hunyuan_i2v(arch: HunyuanVideo15Architecture = TINY_HUNYUAN_I2V, *,
                      dtype: torch.dtype = torch.float32, device: str = "cpu") -> HunyuanVideo15ImageToVideoPipeline:
    size = {"height": arch.image_size, "width": arch.image_size}
    with initialised_as(dtype, device):
        return HunyuanVideo15ImageToVideoPipeline(
            text_encoder=_seeded(lambda: Qwen2_5_VLTextModel(Qwen2_5_VLTextConfig(**arch.text_encoder))),
            tokenizer=qwen_tokenizer(),
            transformer=_seeded(lambda: HunyuanVideo15Transformer3DModel(**arch.transformer)),
            vae=_seeded(lambda: AutoencoderKLHunyuanVideo15(**arch.vae)),
            scheduler=FlowMatchEulerDiscreteScheduler(shift=5.0),
            text_encoder_2=_seeded(lambda: T5EncoderModel(T5Config(**arch.text_encoder_2))),
            tokenizer_2=ByT5Tokenizer(),
            guider=ClassifierFreeGuidance(guidance_scale=arch.guidance),
            image_encoder=_seeded(lambda: SiglipVisionModel(SiglipVisionConfig(**arch.image_encoder))),
            feature_extractor=SiglipImageProcessor(size=size),
        )


def build_cogvideox_i2v(arch: CogVideoXArchitecture, *, dtype: torch.dtype = torch.float32,
                        device: str = "cpu") -> CogVideoXImageToVideoPipeline:
    with initialised_as(dtype, device):
        return CogVideoXImageToVideoPipeline(
            tokenizer=t5_tokenizer(model_max_length=226),
            text_encoder=_seeded(lambda: T5EncoderModel(T5Config(**arch.text_encoder))),
            vae=_seeded(lambda: AutoencoderKLCogVideoX(**arch.vae)),
            transformer=_seeded(lambda: CogVideoXTransformer3DModel(**arch.transformer)),
            scheduler=CogVideoXDDIMScheduler(timestep_spacing="trailing", rescale_betas_zero_snr=True,
                                             prediction_type="v_prediction"),
        )


# --------------------------------------------------------------------------- saved tiny pipelines


def _saved(pipeline: DiffusionPipeline, folder: Path) -> Path:
    pipeline.save_pretrained(folder)
    return folder


def save_flux(folder: Path, *, kontext: bool = False) -> Path:
    return _saved(build_flux(kontext=kontext), Path(folder))


def save_wan_vace(folder: Path) -> Path:
    return _saved(build_wan_vace(), Path(folder))


def save_wan_ti2v(folder: Path) -> Path:
    return _saved(build_wan_i2v(TINY_WAN_TI2V), Path(folder))


def save_wan_i2v_a14b(folder: Path) -> Path:
    return _saved(build_wan_i2v_a14b(), Path(folder))


def save_hunyuan_i2v(folder: Path) -> Path:
    return _saved(build_hunyuan_i2v(), Path(folder))


def save_lora(pipeline: DiffusionPipeline, folder: Path, *, denoiser: str = "transformer", rank: int = 4,
              seed: int = 0) -> Path:
    """A random LoRA on the attention projections of one denoiser, saved as diffusers writes LoRAs.

    `init_lora_weights=False` draws both LoRA matrices at random, so the LoRA changes what the model makes.
    The pipeline itself is left as it was.
    """
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    model = getattr(pipeline, denoiser)
    torch.manual_seed(seed)
    model.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False,
                                 target_modules=["to_q", "to_k", "to_v", "to_out.0"]), adapter_name="saved")
    layers = get_peft_model_state_dict(model, adapter_name="saved")
    model.delete_adapters("saved")
    type(pipeline).save_lora_weights(Path(folder), transformer_lora_layers=layers)
    return Path(folder)


def save_cogvideox_i2v(folder: Path, *, width: int = 64, height: int = 48, frames: int = 9) -> Path:
    return _saved(build_cogvideox_i2v(tiny_cogvideox(width, height, frames)), Path(folder))
