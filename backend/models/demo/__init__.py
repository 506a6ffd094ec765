"""The demo models: trained by our own code on the procedural world (CPU-sized), shipped in ``assets/models``.

* :mod:`.train` - ``train_all`` (embedder, judge, captioner, the generators; reproducible from a seed, every run
  resumable); the generator recipes: :mod:`.train_pixel` (the default), ``train.train_generator`` (latent),
  :mod:`.train_code` (compact code);
* :mod:`.evaluate` - quality on held-out world images (zero-shot accuracy, retrieval, captions naming the
  category, generator category agreement) and ``names_category``, the ground-truth check of a caption.

Loading them needs nothing from here: ``backend.models.load_role`` loads demo and Hugging Face folders alike.
"""
from .evaluate import names_category

__all__ = ["names_category"]
