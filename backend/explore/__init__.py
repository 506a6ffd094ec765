"""What the cortex explorer shows, computed from the workspace (no Streamlit here).

* :mod:`.overlays` - per-vertex overlays of a subject (ROIs, noise ceiling, encoding accuracy, concept map);
* :mod:`.concepts` - concept maps: a text's predicted preference per voxel (four definitions), contrasts of two
  concepts, winner-take-all maps of several, and the top voxels;
* :mod:`.voxel_card` - one voxel's card (top images, category profile, captions, truth, receptive field);
* :mod:`.plots` - the card's plots as matplotlib figures;
* :mod:`.figures` - surface figures of a subject (ROI map, publication panel), also in a child process.
"""
from ..store import has_encoder, subject_encoders, subjects, voxel_table
from ..surface.overlay import Overlay
from .concepts import (DEFAULT_DEFINITION, DEFINITIONS, concept_context, concept_map, concept_scores,
                       parse_concepts, top_voxels, winner_map)
from .figures import cached_roi_map, overlay_png_subprocess, render_overlay, render_roi_map
from .overlays import OVERLAYS, overlay, predicted_overlay, roi_overlay, scatter_to_vertices
from .plots import plot_category_profile, plot_receptive_field
from .voxel_card import find_voxel, receptive_field, training_contrast_energy, voxel_card, voxel_receptive_field

# the kinds of voxel encoder a subject can have, as the explorer names them
ENCODERS = {"ridge": "ridge", "in-context": "in-context"}

__all__ = ["ENCODERS", "subject_encoders", "Overlay", "OVERLAYS", "overlay", "roi_overlay", "predicted_overlay", "scatter_to_vertices", "subjects", "has_encoder",
           "voxel_table", "concept_scores", "top_voxels", "concept_context", "concept_map",
           "parse_concepts", "winner_map", "DEFINITIONS", "DEFAULT_DEFINITION", "find_voxel", "voxel_card",
           "receptive_field", "training_contrast_energy", "voxel_receptive_field", "plot_category_profile",
           "plot_receptive_field", "render_roi_map", "render_overlay", "cached_roi_map", "overlay_png_subprocess"]
