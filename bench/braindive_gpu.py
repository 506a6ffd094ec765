"""BrainDiVE at the paper's scale, for the device machine: Stable Diffusion 2.1 base architecture (random weights,
built from its published config, nothing downloaded) at 512 px, fp16 autocast, 50 DPM-Solver++ steps, guided through a
CLIP ViT-B/16 image tower (random weights, same architecture as the paper's OpenCLIP ViT-B/16) and a linear voxel
encoder. Prints images per second and peak GPU memory at batch 1 and batch 8, guided and unguided. The published
code samples one image at a time: the batch-8 / batch-1 throughput ratio is what batching buys (aim: >= 3x).

    python bench/braindive_gpu.py                       # on a CUDA machine
    python bench/braindive_gpu.py --tiny --device cpu   # the same code path at toy sizes (a smoke check)
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _tokenizer(folder: Path):
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "v.json").write_text(json.dumps(vocab))
    (folder / "m.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "v.json"), str(folder / "m.txt"), model_max_length=77)


def build(folder: Path, tiny: bool):
    """Save an SD-2.1-base-shaped pipeline and a CLIP ViT-B/16 folder under ``folder``; (sd path, clip path)."""
    import torch
    from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import (CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTextConfig,
                              CLIPTextModel)

    torch.manual_seed(0)
    tok = _tokenizer(folder / "tok")
    if tiny:
        unet = dict(sample_size=8, block_out_channels=(32, 64), layers_per_block=1, attention_head_dim=4,
                    cross_attention_dim=32, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), norm_num_groups=8)
        vae = dict(block_out_channels=(16, 32), down_block_types=("DownEncoderBlock2D",) * 2,
                   up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=8, sample_size=16)
        text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
        vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                      image_size=32, patch_size=8)
        proj, crop = 32, 32
    else:  # stabilityai/stable-diffusion-2-1-base's unet/vae/text_encoder configs; OpenCLIP ViT-B/16's image tower
        unet = dict(sample_size=64, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
                    attention_head_dim=(5, 10, 20, 20), cross_attention_dim=1024, use_linear_projection=True,
                    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
        vae = dict(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                   up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, sample_size=512)
        text = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
                    hidden_act="gelu", projection_dim=512)
        vision = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                      image_size=224, patch_size=16)
        proj, crop = 512, 224
    te = CLIPTextModel(CLIPTextConfig(vocab_size=49408, max_position_embeddings=77, eos_token_id=1, bos_token_id=0,
                                      **text))
    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, **vae), text_encoder=te, tokenizer=tok,
        unet=UNet2DConditionModel(in_channels=4, out_channels=4, **unet),
        scheduler=DPMSolverMultistepScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder / "sd")
    clip = CLIPModel(CLIPConfig(text_config=dict(vocab_size=49408, hidden_size=64, intermediate_size=128,
                                                 num_hidden_layers=1, num_attention_heads=2, eos_token_id=1,
                                                 bos_token_id=0),
                                vision_config=vision, projection_dim=proj))
    clip.save_pretrained(folder / "clip")
    CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": crop},
                                                     crop_size={"height": crop, "width": crop}),
                  tokenizer=tok).save_pretrained(folder / "clip")
    return folder / "sd", folder / "clip"


def main() -> None:
    import numpy as np
    import torch

    from backend.models.embedder import load_embedder
    from backend.models.generator import load_generator
    from backend.synthesis import GuidanceConfig, Objective, guided_batches

    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="toy sizes (checks the code path on CPU)")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--batches", default="1,8")
    p.add_argument("--checkpointing", action="store_true", help="gradient checkpointing of the UNet")
    p.add_argument("--sag-scale", type=float, default=0.0, help="self-attention guidance as the published code "
                   "(0.75 there; costs one more UNet call per step)")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        sd, clip = build(Path(tmp), a.tiny)
        gen = load_generator(sd, a.device)
        emb = load_embedder(clip, a.device)
        if a.device.startswith("cuda"):
            gen.pipe.to(torch.float16)  # fp16 weights as the paper; the latents and the guidance stay float32
            gen.pipe.vae.to(torch.float32)
            emb.model.to(torch.float32)
        print(f"built and loaded in {time.time() - t0:.0f} s: UNet "
              f"{sum(q.numel() for q in gen.pipe.unet.parameters()) / 1e6:.0f} M parameters, "
              f"{gen.image_size} px, embedder dim {emb.dim}, device {a.device}")
        rng = np.random.default_rng(0)
        W = rng.normal(size=(200, emb.dim)).astype(np.float32) / np.sqrt(emb.dim)  # 200 voxels of an "ROI"
        objective = Objective(W.mean(0), 0.0, {"bench": "random linear encoder"})
        rows = []
        for batch in [int(b) for b in a.batches.split(",")]:
            for name, scale in (("unguided", 0.0), ("guided", 130.0)):
                cfg = GuidanceConfig(steps=a.steps, batch=batch, scale=scale, sampler="dpm",
                                     gradient_checkpointing=a.checkpointing, sag_scale=a.sag_scale)
                list(guided_batches(gen, emb, objective, list(range(batch)),
                                    GuidanceConfig(steps=2, batch=batch, scale=scale, sampler="dpm")))  # warm-up
                if a.device.startswith("cuda"):
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                t = time.perf_counter()
                n = 0
                for _, im in guided_batches(gen, emb, objective, list(range(batch)), cfg):
                    n += len(im)
                if a.device.startswith("cuda"):
                    torch.cuda.synchronize()
                dt = time.perf_counter() - t
                mem = torch.cuda.max_memory_allocated() / 2**30 if a.device.startswith("cuda") else float("nan")
                rows.append((batch, name, n / dt, mem))
                print(f"batch {batch:2d} {name:9s}: {n / dt:.3f} images/s ({dt:.1f} s for {n}), "
                      f"peak GPU memory {mem:.1f} GiB", flush=True)
        by = {(b, k): r for b, k, r, _ in rows}
        for k in ("unguided", "guided"):
            if (1, k) in by and (8, k) in by:
                print(f"{k}: batch 8 gives {by[(8, k)] / by[(1, k)]:.2f}x the images per second of batch 1")
        if (8, "guided") in by:
            print(f"guided / unguided cost at batch 8: {by[(8, 'unguided')] / by[(8, 'guided')]:.2f}x")


if __name__ == "__main__":
    main()
