"""Image generators: diffusers pipelines whose denoising loop the methods can step through and differentiate.

Three kinds load through :func:`load_generator`:

* our demo pipeline (:class:`EmbeddingConditionedPipeline`): a ``UNet2DModel`` conditioned on a unit embedding of
  the embedder's joint space (a caption's text embedding or an image embedding, unCLIP-style; zeros =
  unconditional), added to the timestep embedding; in pixel space (the first demo generator, 32x32) or on the
  latents of a small ``AutoencoderKL`` (64x64 images from 16x16x4 latents); eps- or v-prediction;
* our compact-code pipeline (:class:`CodeDiffusionPipeline`): the same conditioning, diffusion over a 256-number
  code per image that an MLP autoencoder decodes to the VAE's latents (:mod:`backend.models.code_diffusion`);
* a Stable Diffusion folder (``StableDiffusionPipeline``, e.g. stable-diffusion-2-1-base saved locally),
  whose latents decode through its VAE.

Each kind is a subclass of :class:`Generator` (:class:`DemoGenerator`, :class:`CodeDiffusionGenerator`,
:class:`StableDiffusionGenerator`)
with its own ``from_pretrained``; the base class exposes the loop one step at a time (``prepare_latents`` ->
for t in ``timesteps``: ``predict_noise`` -> ``step``; ``decode``), so that guidance methods (BrainDiVE) can change the noise estimate at each step, and ``sample`` for plain use.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, DDIMScheduler, DiffusionPipeline, UNet2DModel

from ..errors import InvalidInputError
from ._files import read_json

__all__ = ["Generator", "DemoGenerator", "CodeDiffusionGenerator", "StableDiffusionGenerator",
           "EmbeddingConditionedPipeline", "CodeDiffusionPipeline",
           "new_demo_unet", "new_demo_vae", "new_demo_latent_unet", "load_generator"]


class EmbeddingConditionedPipeline(DiffusionPipeline):
    """unet: UNet2DModel(class_embed_type='identity'); the condition is a (B, time_embed_dim) embedding; an optional
    ``vae`` (AutoencoderKL) makes it a latent pipeline. Sampling goes through :class:`DemoGenerator`."""

    _optional_components = ["vae"]

    def __init__(self, unet: UNet2DModel, scheduler: DDIMScheduler, vae: AutoencoderKL | None = None):
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler, vae=vae)


def new_demo_unet(cond_dim: int = 256, size: int = 32, base: int = 32) -> UNet2DModel:
    """A small pixel UNet; the condition (cond_dim) is added to the timestep embedding of the same size."""
    return UNet2DModel(sample_size=size, in_channels=3, out_channels=3, layers_per_block=1,
                       block_out_channels=(base, 2 * base, 4 * base), time_embedding_dim=cond_dim,
                       down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
                       class_embed_type="identity", norm_num_groups=8, attention_head_dim=32)


def new_demo_vae(base: int = 16, size: int = 64) -> AutoencoderKL:
    """A small KL autoencoder: (3, 64, 64) images <-> (4, 16, 16) latents."""
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, sample_size=size, layers_per_block=1,
                         down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                         block_out_channels=(base, 2 * base, 4 * base), norm_num_groups=8)


def new_demo_latent_unet(cond_dim: int = 256, size: int = 16, base: int = 48) -> UNet2DModel:
    """The latent UNet: (4, 16, 16) latents, attention at 8x8 and 4x4; the condition is added to the time
    embedding (cond_dim)."""
    return UNet2DModel(sample_size=size, in_channels=4, out_channels=4, layers_per_block=2,
                       block_out_channels=(base, 2 * base, 3 * base), time_embedding_dim=cond_dim,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
                       class_embed_type="identity", norm_num_groups=16, attention_head_dim=32)


class Generator:
    """The interface every image generator offers, one denoising step at a time.

    ``condition(prompts)`` -> conditioning tensors; ``unconditional(n)``; ``prepare_latents(n, seed)``;
    ``timesteps(steps)``; ``predict_noise(latents, t, cond, guidance)``; ``step(eps, t, latents)``;
    ``decode(latents)`` -> images in [0, 1] (B, 3, H, W), differentiable; ``sample(prompts, ...)`` -> uint8
    (n, H, W, 3). Subclasses load one kind of folder with ``from_pretrained(folder, device, ...)``.
    """

    braindive_scale: float | None = None  # a measured BrainDiVE guidance scale (voxelscope.json), if any

    def __init__(self, pipe, model_id: str, device: str = "cpu"):
        self.pipe = pipe.to(device)
        self.model_id = model_id
        self.device = device
        self.scheduler = pipe.scheduler

    # --- what each kind defines
    def condition(self, prompts: list[str]) -> torch.Tensor:
        raise NotImplementedError

    def unconditional(self, n: int) -> torch.Tensor:
        raise NotImplementedError

    def _unet_eps(self, x: torch.Tensor, t, cond: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] (B, 3, H, W) at the generator's resolution -> latents (the inverse of ``decode``)."""
        raise NotImplementedError

    @property
    def image_size(self) -> int:
        raise NotImplementedError

    def images_to_tensor(self, images) -> torch.Tensor:
        """uint8 images (n, H, W, 3) of any size -> (n, 3, S, S) in [0, 1] at the generator's resolution."""
        import torch.nn.functional as F

        x = torch.from_numpy(np.stack([np.asarray(i) for i in images])).permute(0, 3, 1, 2).float() / 255
        if x.shape[-1] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="area"
                              if x.shape[-1] > self.image_size else "bilinear")
        return x.to(self.device)

    # --- the loop, one step at a time
    @property
    def denoiser(self) -> torch.nn.Module:
        """The network that predicts the noise (a UNet, or the compact code's MLP)."""
        return self.pipe.unet

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """The shape of one sample's latents."""
        cfg = self.pipe.unet.config
        return (cfg.in_channels, cfg.sample_size, cfg.sample_size)

    def prepare_latents(self, n: int, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        shape = (n, *self.latent_shape)
        return (torch.randn(shape, generator=g) * self.scheduler.init_noise_sigma).to(self.device)

    def timesteps(self, steps: int):
        self.scheduler.set_timesteps(steps)
        return self.scheduler.timesteps

    def predict_noise(self, latents: torch.Tensor, t, cond: torch.Tensor, guidance: float = 1.0,
                      uncond: torch.Tensor | None = None) -> torch.Tensor:
        """The noise estimate at step ``t``; with ``guidance`` != 1, classifier-free guidance against ``uncond``."""
        x = self.scheduler.scale_model_input(latents, t)
        if guidance == 1.0:
            return self._unet_eps(x, t, cond)
        u = uncond if uncond is not None else self.unconditional(len(x))
        eu, ec = self._unet_eps(torch.cat([x, x]), t, torch.cat([u, cond])).chunk(2)
        return eu + guidance * (ec - eu)

    def step(self, eps: torch.Tensor, t, latents: torch.Tensor) -> torch.Tensor:
        return self.scheduler.step(eps, t, latents).prev_sample

    @torch.no_grad()
    def sample(self, prompts: list[str], steps: int = 50, guidance: float = 3.0, seed: int = 0) -> np.ndarray:
        """uint8 images (n, H, W, 3) for ``prompts``, ``steps`` denoising steps, classifier-free ``guidance``."""
        cond = self.condition(prompts)
        uncond = self.unconditional(len(prompts))
        x = self.prepare_latents(len(prompts), seed)
        for t in self.timesteps(steps):
            x = self.step(self.predict_noise(x, t, cond, guidance, uncond), t, x)
        return self.to_uint8(self.decode(x))

    @staticmethod
    def to_uint8(img: torch.Tensor) -> np.ndarray:
        return (img.permute(0, 2, 3, 1).detach().cpu().numpy() * 255).round().astype(np.uint8)

    @torch.no_grad()
    def img2img(self, images, cond: torch.Tensor, strength: float = 0.6, steps: int = 50, guidance: float = 3.0,
                seed: int = 0, on_step=None) -> np.ndarray:
        """Start from ``images`` (uint8 (n, H, W, 3)) noised to the ``strength`` point of the schedule (0 = keep
        them, 1 = from pure noise) and denoise under ``cond``; uint8 images (n, S, S, 3). ``on_step(k, n, x0)``
        sees each step's estimate of the final images (uint8), for showing the path. ``seed``: one for the batch, or
        one per image."""
        if not 0 <= strength <= 1:
            raise InvalidInputError(f"strength must be in [0, 1], got {strength}")
        x0 = self.encode(self.images_to_tensor(images))
        ts = self.timesteps(steps)
        start = min(int(round(steps * (1 - strength))), steps)
        ts = ts[start:]
        if len(ts) == 0:
            return self.to_uint8(self.decode(x0))
        if np.ndim(seed):  # one seed per image: an image's noise does not depend on the batch it is in
            noise = torch.cat([torch.randn((1, *x0.shape[1:]), generator=torch.Generator().manual_seed(int(s)))
                               for s in seed]).to(self.device)
        else:
            noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed)).to(self.device)
        x = self.scheduler.add_noise(x0, noise, ts[:1].repeat(len(x0)))
        uncond = self.unconditional(len(x0))
        for k, t in enumerate(ts):
            eps = self.predict_noise(x, t, cond, guidance, uncond)
            if on_step is not None:
                abar = self.scheduler.alphas_cumprod.to(x.device)[torch.as_tensor(t, device=x.device).long()]
                on_step(k, len(ts), self.to_uint8(self.decode((x - (1 - abar).sqrt() * eps) / abar.sqrt())))
            x = self.step(eps, t, x)
        return self.to_uint8(self.decode(x))


class DemoGenerator(Generator):
    """Our demo pipeline: a UNet conditioned on a unit embedding of the embedder's joint space (text or image), in
    pixel space or on the latents of its VAE. A v-prediction UNet's output is turned into the noise estimate, so
    every caller (and BrainDiVE's guidance) sees eps."""

    def __init__(self, pipe: EmbeddingConditionedPipeline, model_id: str, device: str = "cpu", embedder=None,
                 prediction: str = "epsilon"):
        super().__init__(pipe, model_id, device)
        self.embedder = embedder  # defines the condition space
        self.vae = getattr(pipe, "vae", None)
        if prediction not in ("epsilon", "v_prediction"):
            raise InvalidInputError(f"prediction must be 'epsilon' or 'v_prediction', got {prediction!r}")
        self.prediction = prediction

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str = "cpu", embedder=None) -> "DemoGenerator":
        pipe = EmbeddingConditionedPipeline.from_pretrained(str(folder), local_files_only=True)
        info = Path(folder) / "voxelscope.json"
        meta = json.loads(info.read_text()) if info.exists() else {}
        gen = cls(pipe, _model_id(Path(folder)), device, embedder, meta.get("prediction", "epsilon"))
        gen.braindive_scale = meta.get("braindive_scale")
        return gen

    @property
    def image_size(self) -> int:
        size = self.pipe.unet.config.sample_size
        return size * 2 ** (len(self.vae.config.block_out_channels) - 1) if self.vae is not None else size

    def condition(self, prompts: list[str]) -> torch.Tensor:
        if self.embedder is None:
            raise InvalidInputError("the demo generator needs the demo embedder to turn prompts into conditions")
        return torch.from_numpy(self.embedder.text_features(prompts)).to(self.device)

    def condition_images(self, images) -> torch.Tensor:
        """Conditions from images (uint8 (n, H, W, 3)) or from image embeddings (n, dim) of the joint space."""
        a = np.asarray(images) if not isinstance(images, list) else images
        if isinstance(a, np.ndarray) and a.ndim == 2:
            e = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-8)
            return torch.from_numpy(e.astype(np.float32)).to(self.device)
        if self.embedder is None:
            raise InvalidInputError("the demo generator needs the demo embedder to embed condition images")
        return torch.from_numpy(self.embedder.image_features(images)).to(self.device)

    def unconditional(self, n: int) -> torch.Tensor:
        cfg = self.pipe.unet.config
        return torch.zeros((n, cfg.time_embedding_dim or 4 * cfg.block_out_channels[0]), device=self.device)

    def _unet_eps(self, x, t, cond):
        out = self.pipe.unet(x, t, class_labels=cond).sample
        if self.prediction == "epsilon":
            return out
        abar = self.scheduler.alphas_cumprod.to(x.device)[torch.as_tensor(t, device=x.device).long()]
        return abar.sqrt() * out + (1 - abar).sqrt() * x  # eps from v

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        if self.vae is None:
            return (latents / 2 + 0.5).clamp(0, 1)
        img = self.vae.decode(latents / self.vae.config.scaling_factor).sample
        return (img / 2 + 0.5).clamp(0, 1)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        x = images * 2 - 1
        if self.vae is None:
            return x
        return self.vae.encode(x).latent_dist.mode() * self.vae.config.scaling_factor


class CodeDiffusionPipeline(torch.nn.Module):
    """The compact-code demo generator's parts: ``denoiser`` (:class:`~backend.models.code_diffusion.CodeDenoiser`),
    ``codec`` (:class:`~backend.models.code_diffusion.CodeAutoencoder`), ``vae`` (AutoencoderKL) and a DDIM
    ``scheduler``; saved as one folder per part plus ``model_index.json``."""

    def __init__(self, denoiser, codec, vae: AutoencoderKL, scheduler: DDIMScheduler):
        super().__init__()
        self.denoiser, self.codec, self.vae = denoiser, codec, vae
        self.scheduler = scheduler

    def save_pretrained(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.denoiser.save_pretrained(folder / "denoiser")
        self.codec.save_pretrained(folder / "codec")
        self.vae.save_pretrained(str(folder / "vae"))
        self.scheduler.save_pretrained(str(folder / "scheduler"))
        (folder / "model_index.json").write_text(json.dumps({
            "_class_name": "CodeDiffusionPipeline", "scheduler": ["diffusers", "DDIMScheduler"],
            "vae": ["diffusers", "AutoencoderKL"], "codec": ["voxelscope", "CodeAutoencoder"],
            "denoiser": ["voxelscope", "CodeDenoiser"]}, indent=1))


class CodeDiffusionGenerator(DemoGenerator):
    """The compact-code demo generator: diffusion over a 256-number code per image, decoded by the code
    autoencoder to VAE latents and by the VAE to pixels (:mod:`backend.models.code_diffusion`). Conditioned like
    :class:`DemoGenerator` (text or image embeddings of the embedder's joint space; zeros = unconditional)."""

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str = "cpu", embedder=None) -> "CodeDiffusionGenerator":
        from .code_diffusion import CodeAutoencoder, CodeDenoiser

        folder = Path(folder)
        pipe = CodeDiffusionPipeline(CodeDenoiser.from_pretrained(folder / "denoiser"),
                                     CodeAutoencoder.from_pretrained(folder / "codec"),
                                     AutoencoderKL.from_pretrained(str(folder / "vae"), local_files_only=True).eval(),
                                     DDIMScheduler.from_pretrained(str(folder / "scheduler"), local_files_only=True))
        info = folder / "voxelscope.json"
        meta = json.loads(info.read_text()) if info.exists() else {}
        gen = cls(pipe, _model_id(folder), device, embedder, meta.get("prediction", "v_prediction"))
        gen.braindive_scale = meta.get("braindive_scale")
        return gen

    @property
    def denoiser(self) -> torch.nn.Module:
        return self.pipe.denoiser

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.pipe.denoiser.config["code_dim"],)

    @property
    def image_size(self) -> int:
        return self.pipe.codec.latent_shape[-1] * 2 ** (len(self.vae.config.block_out_channels) - 1)

    def unconditional(self, n: int) -> torch.Tensor:
        return torch.zeros((n, self.pipe.denoiser.config["cond_dim"]), device=self.device)

    def _unet_eps(self, x, t, cond):
        out = self.pipe.denoiser(x, t, cond)
        if self.prediction == "epsilon":
            return out
        abar = self.scheduler.alphas_cumprod.to(x.device)[torch.as_tensor(t, device=x.device).long()]
        return abar.sqrt() * out + (1 - abar).sqrt() * x  # eps from v

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        img = self.vae.decode(self.pipe.codec.decode(latents) / self.vae.config.scaling_factor).sample
        return (img / 2 + 0.5).clamp(0, 1)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        lat = self.vae.encode(images * 2 - 1).latent_dist.mode() * self.vae.config.scaling_factor
        return self.pipe.codec.encode(lat)


class StableDiffusionGenerator(Generator):
    """A local Stable Diffusion folder (e.g. stable-diffusion-2-1-base): text-conditioned latents, VAE decoding."""

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str = "cpu", embedder=None) -> "StableDiffusionGenerator":
        from diffusers import StableDiffusionPipeline

        pipe = StableDiffusionPipeline.from_pretrained(str(folder), local_files_only=True, safety_checker=None)
        return cls(pipe, _model_id(Path(folder)), device)

    def condition(self, prompts: list[str]) -> torch.Tensor:
        ids = self.pipe.tokenizer(prompts, padding="max_length", max_length=self.pipe.tokenizer.model_max_length,
                                  truncation=True, return_tensors="pt").input_ids.to(self.device)
        with torch.no_grad():
            return self.pipe.text_encoder(ids)[0]

    def unconditional(self, n: int) -> torch.Tensor:
        return self.condition([""] * n)

    def _unet_eps(self, x, t, cond):
        return self.pipe.unet(x, t, encoder_hidden_states=cond).sample

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        vae = self.pipe.vae
        img = vae.decode(latents / vae.config.scaling_factor).sample
        return (img / 2 + 0.5).clamp(0, 1)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        vae = self.pipe.vae
        return vae.encode(images * 2 - 1).latent_dist.mode() * vae.config.scaling_factor

    @property
    def image_size(self) -> int:
        return self.pipe.unet.config.sample_size * self.pipe.vae_scale_factor

    @contextlib.contextmanager
    def self_attention_store(self):
        """While open, the UNet's mid-block self-attention keeps its attention probabilities and map size (what
        self-attention guidance reads); the original processor is put back on exit."""
        from diffusers.pipelines.deprecated.stable_diffusion_sag.pipeline_stable_diffusion_sag import \
            CrossAttnStoreProcessor

        block = self.pipe.unet.mid_block.attentions[0]
        attn = block.transformer_blocks[0].attn1
        original, store = attn.processor, CrossAttnStoreProcessor()
        store.map_size = None

        def size_hook(module, inputs, output):
            store.map_size = output[0].shape[-2:]

        attn.processor = store
        hook = block.register_forward_hook(size_hook)
        try:
            yield store
        finally:
            hook.remove()
            attn.processor = original

    def self_attention_guidance(self, x: torch.Tensor, t, eps: torch.Tensor, cond: torch.Tensor, store,
                                scale: float) -> torch.Tensor:
        """Self-attention guidance (Hong et al. 2023, as diffusers' StableDiffusionSAGPipeline without
        classifier-free guidance): the x0 estimate blurred where the last UNet call's mid-block self-attention is
        concentrated, noised back to step ``t`` with ``eps``, denoised again; returns the correction
        ``scale * (eps - eps(degraded))`` to add to ``eps``. ``store``: from :meth:`self_attention_store`, holding the
        attention of the call that produced ``eps`` (on ``x`` under ``cond``)."""
        import torch.nn.functional as F
        from diffusers.pipelines.deprecated.stable_diffusion_sag.pipeline_stable_diffusion_sag import \
            gaussian_blur_2d

        probs = store.attention_probs
        if probs is None or store.map_size is None:
            raise InvalidInputError("self-attention guidance needs the attention of a UNet call on these latents")
        b = x.shape[0]
        if probs.shape[0] % b:
            raise InvalidInputError(f"the stored attention covers {probs.shape[0]} maps, not a multiple of the batch "
                                    f"{b} (self-attention guidance runs with classifier-free guidance off)")
        with torch.no_grad():
            abar = self.scheduler.alphas_cumprod.to(x.device)[torch.as_tensor(t, device=x.device).long()]
            x0 = (x - (1 - abar).sqrt() * eps) / abar.sqrt()
            hw = probs.shape[-1]
            mask = probs.detach().reshape(b, -1, hw, hw).mean(1).sum(1) > 1.0
            mask = mask.reshape(b, 1, *store.map_size).to(x.dtype)
            mask = F.interpolate(mask, x.shape[-2:]).expand_as(x)
            degraded = gaussian_blur_2d(x0, kernel_size=9, sigma=1.0) * mask + x0 * (1 - mask)
            degraded = self.scheduler.add_noise(degraded, eps, torch.as_tensor(t, device=x.device).reshape(1))
            return scale * (eps - self._unet_eps(degraded, t, cond))


def _model_id(folder: Path) -> str:
    info = read_json(folder, "model_index.json", "expected a diffusers pipeline")
    model_id = info.get("_name_or_path") or f"diffusers:{folder.name}"
    if (folder / "voxelscope.json").exists():
        model_id = json.loads((folder / "voxelscope.json").read_text()).get("model_id", model_id)
    return model_id


def _generator_class(pipeline_class: str | None) -> type[Generator] | None:
    if pipeline_class == "EmbeddingConditionedPipeline":
        return DemoGenerator
    if pipeline_class == "CodeDiffusionPipeline":
        return CodeDiffusionGenerator
    if pipeline_class and pipeline_class.startswith("StableDiffusion"):
        return StableDiffusionGenerator
    return None


def load_generator(folder: str | Path, device: str = "cpu", embedder=None) -> Generator:
    """The generator in ``folder``, by the pipeline class its ``model_index.json`` names: our
    ``EmbeddingConditionedPipeline`` (:class:`DemoGenerator`, conditioned through ``embedder``), our
    ``CodeDiffusionPipeline`` (:class:`CodeDiffusionGenerator`, the same conditioning) or a
    ``StableDiffusion*`` pipeline (:class:`StableDiffusionGenerator`)."""
    folder = Path(folder)
    info = read_json(folder, "model_index.json", "expected a diffusers pipeline")
    for comp in [k for k, v in info.items() if isinstance(v, list) and v[0] is not None]:
        if not (folder / comp).is_dir():
            raise FileNotFoundError(f"model folder {folder} has no {comp}/ (named in model_index.json)")
    cls = _generator_class(info.get("_class_name"))
    if cls is None:
        raise InvalidInputError(f"{folder / 'model_index.json'}: pipeline class {info.get('_class_name')!r} is not "
                                "supported (EmbeddingConditionedPipeline, CodeDiffusionPipeline or StableDiffusion*)")
    return cls.from_pretrained(folder, device, embedder=embedder)
