"""Where each ROI looks in an image (the attention encoder's maps) and how well that matches ground truth.

* :mod:`.maps` - attention maps per query, dense selectivity maps (BrainSAIL-style), upsampling;
* :mod:`.image` - one image through a subject's encoder (maps, predicted responses, dense map), the grid figure;
* :mod:`.evaluation` - accuracy of the attention encoder against ridge per ROI, and the maps against the demo
  world's object masks and retinotopy.

The encoder itself is :mod:`backend.encoders.attention` (fitting, storing, loading).
"""
from .evaluation import accuracy_vs_ridge, attention_ground_truth, centre_of_mass, expected_quadrant, roi_categories
from .image import (ImageAttention, attention_grid_png, attention_on_objects, image_attention, load_image_file, map_overlay_png,
                    roi_average_attention, roi_dense_map)
from .maps import (DEFAULT_VIEWS, attention_maps, dense_maps, patch_fractions, roi_weight_vector, to_distribution,
                   upsample)

__all__ = ["attention_maps", "dense_maps", "roi_weight_vector", "to_distribution", "upsample", "DEFAULT_VIEWS",
           "accuracy_vs_ridge", "attention_ground_truth", "centre_of_mass", "expected_quadrant", "roi_categories",
           "ImageAttention", "image_attention", "attention_on_objects", "patch_fractions", "roi_dense_map", "roi_average_attention", "attention_grid_png",
           "map_overlay_png", "load_image_file"]
