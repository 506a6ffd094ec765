"""Voxel-wise encoders: from stimulus features to each voxel's response.

* :mod:`.features` - stimulus embeddings cached per embedder, and contrast energy of stimuli;
* :mod:`.ridge` - ridge regression with per-voxel cross-validated regularisation (one SVD serves every alpha);
* :mod:`.voxelwise` - fit, evaluate on the shared test images and store a subject's encoder; ``encoder_weights``
  gives its weights in embedding space, the object the paper methods work with.

Room is left for the attention-routing transformer encoder (``attention.py``).
"""
from .features import contrast_energy_matrix, stimulus_features, stored_features
from .ridge import fit_ridge_cv, pearson_columns, r2_columns
from .voxelwise import design_matrices, encoder_weights, fit_encoder, fit_encoders

__all__ = ["stimulus_features", "stored_features", "contrast_energy_matrix", "fit_ridge_cv", "pearson_columns",
           "r2_columns", "fit_encoder", "fit_encoders", "encoder_weights", "design_matrices"]
