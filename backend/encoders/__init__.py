"""Voxel-wise encoders: from stimulus features to each voxel's response.

* :mod:`.features` - stimulus embeddings and patch tokens cached per embedder, and contrast energy of stimuli;
* :mod:`.ridge` - ridge regression with per-voxel cross-validated regularisation (one SVD serves every alpha);
* :mod:`.voxelwise` - fit, evaluate on the shared test images and store a subject's encoder; ``encoder_weights``
  gives its weights in embedding space, the object the paper methods work with;
* :mod:`.halves` - ``fit_encoder_halves`` makes a subject's encoder again from each half of its images (one half
  guides BrainDiVE, the other re-ranks its images);
* :mod:`.incontext` - in-context encoders (BraInCoRL-style): a transformer reads a voxel's (embedding, response)
  pairs and writes its linear encoder, so a new subject gets encoders from a few dozen images with no fitting;
* :mod:`.attention` - the transformer encoder with attention routing (Adeli et al.): one learned query per ROI
  and hemisphere attends over the patch tokens; each voxel reads its ROI's token.
"""
from .attention import (AttentionConfig, attention_encoders, AttentionEncoder, attention_key, fit_attention_encoder,
                        fit_attention_encoders, load_attention_encoder, voxel_queries)
from .incontext import (fit_incontext_encoder, incontext_model_path, incontext_weights, load_incontext_model,
                        train_incontext)
from .features import contrast_energy_matrix, stimulus_features, stimulus_patch_tokens, stored_features
from .ridge import fit_ridge_cv, pearson_columns, r2_columns
from .halves import encoder_half, fit_encoder_halves
from .voxelwise import design_matrices, encoder_weights, fit_encoder, fit_encoders, predict_images, store_encoder

__all__ = ["stimulus_features", "stimulus_patch_tokens", "stored_features", "contrast_energy_matrix", "fit_ridge_cv",
           "pearson_columns", "r2_columns", "fit_encoder", "fit_encoders", "encoder_weights", "design_matrices",
           "predict_images", "fit_encoder_halves", "encoder_half", "store_encoder",
           "incontext_model_path", "load_incontext_model", "incontext_weights", "train_incontext", "fit_incontext_encoder",
           "AttentionConfig", "AttentionEncoder", "attention_key", "fit_attention_encoder", "fit_attention_encoders",
           "load_attention_encoder", "voxel_queries", "attention_encoders"]
