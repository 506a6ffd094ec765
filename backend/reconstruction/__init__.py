"""Brain-IT: reconstruct seen images from fMRI (voxel clusters shared across subjects, the brain interaction
transformer, a ridge baseline, the generator started from the low-level guess), scored with the field's metrics."""
from .clusters import DEFAULT_K, fit_clusters, voxel_clusters, voxel_vectors
from .brainit import BITConfig, decoders, ensure_decoder, fit_bit, fit_ridge_decoder, load_decoder, one_hour_images
from .metrics import (METRIC_COLUMNS, PAPER_ROWS, FeatureNet, demo_feature_nets, evaluate_pairs, feature_distance,
                      higher_is_better, pixcorr, ssim, two_way_identification)
from .reconstruct import (ReconConfig, brain_equivalence, metrics_table, per_image_metrics, reconstruct,
                          reconstruction_runs, reconstruction_steps, run_metrics, run_reconstructions, test_images)

__all__ = ["fit_clusters", "voxel_clusters", "voxel_vectors", "DEFAULT_K", "BITConfig", "fit_bit", "fit_ridge_decoder",
           "ensure_decoder", "load_decoder", "decoders", "one_hour_images", "pixcorr", "ssim", "two_way_identification",
           "feature_distance", "FeatureNet", "demo_feature_nets", "evaluate_pairs", "METRIC_COLUMNS", "PAPER_ROWS",
           "higher_is_better", "ReconConfig", "reconstruct", "reconstruction_runs", "run_reconstructions",
           "run_metrics", "brain_equivalence", "per_image_metrics", "reconstruction_steps", "metrics_table",
           "test_images"]
