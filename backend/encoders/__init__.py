"""Voxel-wise encoders: from stimulus features to each voxel's response.

* :mod:`.features` - stimulus embeddings and patch tokens cached per embedder, and contrast energy of stimuli;
* :mod:`.ridge` - ridge regression with per-voxel cross-validated regularisation (one SVD serves every alpha);
* :mod:`.voxelwise` - fit, evaluate on the shared test images and store a subject's encoder; ``encoder_weights``
  gives its weights in embedding space, the object the paper methods work with; ``fit_encoder_halves`` fits it
  again on each half of the training images (one half guides BrainDiVE, the other re-ranks its images);
* :mod:`.attention` - the transformer encoder with attention routing (Adeli et al.): one learned query per ROI
  and hemisphere attends over the patch tokens; each voxel reads its ROI's token.
"""
from .attention import (AttentionConfig, attention_encoders, AttentionEncoder, attention_key, fit_attention_encoder,
                        fit_attention_encoders, load_attention_encoder, voxel_queries)
from .features import contrast_energy_matrix, stimulus_features, stimulus_patch_tokens, stored_features
from .ridge import fit_ridge_cv, pearson_columns, r2_columns
from .voxelwise import (design_matrices, encoder_half, encoder_weights, fit_encoder, fit_encoder_halves, fit_encoders,
                        predict_images)

__all__ = ["stimulus_features", "stimulus_patch_tokens", "stored_features", "contrast_energy_matrix", "fit_ridge_cv",
           "pearson_columns", "r2_columns", "fit_encoder", "fit_encoders", "encoder_weights", "design_matrices",
           "predict_images", "fit_encoder_halves", "encoder_half",
           "AttentionConfig", "AttentionEncoder", "attention_key", "fit_attention_encoder", "fit_attention_encoders",
           "load_attention_encoder", "voxel_queries", "attention_encoders"]
