"""Voxel captions: what each voxel prefers, in words.

* :mod:`.brainscuba` - BrainSCUBA (Luo et al. 2024): encoder weights projected onto natural images, decoded;
* :mod:`.lavca` - LaVCa (Matsuyama et al. 2025): keywords and a sentence from the captions of the voxel's top images;
* :mod:`.registry` - ``CAPTION_METHODS``: name -> method class (label, defaults, models it needs);
* :mod:`.banks` - the image-embedding banks the methods use (demo bank, user banks);
* :mod:`.runner` - ``precompute`` (the one resumable caption loop) and ``caption_all`` (bank, captions, evaluation);
* :mod:`.evaluation` - sentence-level prediction, the ground-truth check, diversity;
* :mod:`.search` - keyword and semantic search over every voxel's caption, and the page's summaries.
"""
from .banks import bank_table, build_demo_bank, import_bank, load_bank
from .brainscuba import BrainSCUBA, brainscuba_project
from .evaluation import diversity, evaluate, evaluation_summary, ground_truth_table
from .lavca import KeywordModel, LaVCa, top_pool_indices
from .registry import CAPTION_METHODS, caption_method, method_label
from .runner import caption_all, caption_runs, caption_status, captioned_subjects, precompute
from .search import (CaptionIndex, caption_match_overlay, filter_results, matches_per_roi, roi_summaries,
                     store_caption_embeddings)

__all__ = ["CAPTION_METHODS", "caption_method", "method_label", "BrainSCUBA", "LaVCa", "brainscuba_project",
           "KeywordModel", "top_pool_indices", "bank_table", "load_bank", "build_demo_bank", "import_bank",
           "precompute", "caption_all", "caption_status", "caption_runs", "captioned_subjects", "evaluate",
           "ground_truth_table",
           "diversity", "evaluation_summary", "CaptionIndex", "filter_results", "matches_per_roi",
           "caption_match_overlay", "roi_summaries", "store_caption_embeddings"]
