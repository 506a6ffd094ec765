"""Synthesize images a brain region is predicted to prefer: BrainDiVE (Luo et al. 2023) and what we add to it.

* :mod:`.targets` - what to maximise: an ROI, a union, a weighted contrast, voxels (one voxel, a concept's top
  voxels), per subject or averaged over subjects, as a small spec stored with every result;
* :mod:`.braindive` - the published guidance loop on any :class:`backend.models.generator.Generator`;
* :mod:`.runner` - a stored, resumable run: images guided by the encoder of one half of the training images,
  re-ranked by the other half's, with provenance; on a demo world each image is shown to the simulated subject;
* :mod:`.evaluation` - held to ground truth on a demo world, against unguided and text-conditioned baselines.
"""
from .braindive import PAPER_SCALE, SAMPLERS, GuidanceConfig, configured_scale, guided_batches, recommended_scale
from .evaluation import CATEGORY_PROMPTS, default_targets, evaluate_synthesis, stored_evaluation
from .runner import (SynthesisModels, find_run, gallery_files, natural_top, preview_path, require_run, run_images, run_key, shown_categories,
                     synthesis_images, synthesis_runs, synthesize, target_objectives)
from .targets import Objective, normalise_spec, parse_target, target_choices, target_label, voxel_weights

__all__ = ["GuidanceConfig", "guided_batches", "PAPER_SCALE", "SAMPLERS", "recommended_scale", "configured_scale", "Objective", "parse_target", "normalise_spec",
           "target_label", "voxel_weights", "SynthesisModels", "synthesize", "synthesis_runs", "synthesis_images",
           "run_images", "find_run", "run_key", "preview_path", "require_run", "target_objectives", "shown_categories",
           "evaluate_synthesis", "default_targets", "stored_evaluation", "CATEGORY_PROMPTS", "natural_top",
           "target_choices", "gallery_files"]
