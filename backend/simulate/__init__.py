"""A brain you can ask: the demo world's synthetic subjects respond to any image.

The world's subjects respond to what is in an image (the visible area of each category's objects, the kind of
background) and to its local contrast energy. For the world's own stimuli those come from the annotations; for
any other image (generated, reconstructed, uploaded) the judge (:mod:`backend.models.judge`) recovers them from
pixels, and the same tuning and normalisation give the response.

* :func:`simulated_subject` - a subject's ground truth (tuning, pRFs, noise) with the world's normalisation;
* :func:`simulate_response` - noise-free responses of every voxel to images;
* :func:`simulate_trials` - single trials with the subject's own noise (a virtual experiment);
* :func:`roi_agreement`, :func:`segmentation_png` - the virtual experiment page's table and figure;
* :func:`check_against_truth` - from pixels alone vs the annotation-based true signal, per ROI;
* :func:`world_target_responses` - a voxel set's true response to each of the world's stimuli (the reference
  distribution synthesized images are scored against).

Only workspaces of the demo world have ground truth; others get a clear error.
"""
from .response import (SimulatedSubject, check_against_truth, has_ground_truth, roi_agreement, segmentation_png, simulate_response,
                       simulate_trials, simulated_subject, world_semantic_features, world_target_responses)

__all__ = ["SimulatedSubject", "simulated_subject", "simulate_response", "simulate_trials",
           "world_semantic_features", "has_ground_truth", "roi_agreement", "segmentation_png", "check_against_truth",
           "world_target_responses"]
