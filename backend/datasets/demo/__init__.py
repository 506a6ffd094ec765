"""The embedded synthetic world: an NSD-like dataset that VoxelScope generates, with ground truth.

* :mod:`.stimuli` - procedural images with captions, object masks and attributes, deterministic from (seed, index),
  and ``compose_stimulus``: a new image from the same grammar with the objects you choose;
* :mod:`.anatomy` - where visual cortex is on fsaverage5 (ROI seeds, retinotopy, visual mask);
* :mod:`.subjects` - synthetic subjects: ROIs, per-voxel response models, NSD-like design and single trials;
* :mod:`.world` - ``build_demo_world``: render, simulate, preprocess as for real data, store (resumable);
* :mod:`.export` - the world in the NSD release and Algonauts 2023 layouts (read back by the real importers).
"""
from .export import export_demo_algonauts, export_demo_nsd
from .stimuli import CATEGORIES, KINDS, PLACES, compose_stimulus
from .world import WorldConfig, build_demo_world, default_config, tiny_config

__all__ = ["WorldConfig", "build_demo_world", "default_config", "tiny_config", "export_demo_nsd",
           "export_demo_algonauts", "compose_stimulus", "CATEGORIES", "KINDS", "PLACES"]
