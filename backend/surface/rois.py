"""Regions of interest: NSD's ROI files and label names, our food file, display colours and orders.

A leaf module (no imports from the rest of the package): the store's voxel table, the importers,
the demo world, the overlays, the viewer and the figures all read their ROI facts from here.
"""
from __future__ import annotations

__all__ = ["HEMIS", "ROI_FILES", "EXTRA_ROI_FILES", "ALL_ROI_FILES", "ROI_COLUMNS", "FLOC_CATEGORY",
           "FILE_CATEGORY", "ROI_COLOURS", "ROI_ORDER", "EARLY_ROIS", "roi_legend_name"]

HEMIS = ("lh", "rh")

# NSD ROI files: file name -> {label id: label name}
ROI_FILES: dict[str, dict[int, str]] = {
    "prf-visualrois": {1: "V1v", 2: "V1d", 3: "V2v", 4: "V2d", 5: "V3v", 6: "V3d", 7: "hV4"},
    "floc-faces": {1: "OFA", 2: "FFA-1", 3: "FFA-2", 4: "mTL-faces", 5: "aTL-faces"},
    "floc-places": {1: "OPA", 2: "PPA", 3: "RSC"},
    "floc-bodies": {1: "EBA", 2: "FBA-1", 3: "FBA-2", 4: "mTL-bodies"},
    "floc-words": {1: "OWFA", 2: "VWFA-1", 3: "VWFA-2", 4: "mfs-words", 5: "mTL-words"},
    "streams": {1: "early", 2: "midventral", 3: "midlateral", 4: "midparietal", 5: "ventral", 6: "lateral",
                7: "parietal"},
}
# Our one ROI file that NSD does not have: food-selective ventral cortex (Jain et al. 2023,
# Khosla et al. 2022, Pennock et al. 2023), medial/posterior to FFA.
EXTRA_ROI_FILES: dict[str, dict[int, str]] = {"food": {1: "ventral-food"}}
ALL_ROI_FILES: dict[str, dict[int, str]] = {**ROI_FILES, **EXTRA_ROI_FILES}
# the voxel table's ROI columns, one per ROI file
ROI_COLUMNS = ("prf-visualrois", "floc-faces", "floc-places", "floc-bodies", "floc-words", "food", "streams")

FLOC_CATEGORY = {"floc-faces": "face", "floc-places": "place", "floc-bodies": "body", "floc-words": "word"}
FILE_CATEGORY = {**FLOC_CATEGORY, "food": "food"}

EARLY_ROIS = ("V1v", "V1d", "V2v", "V2d", "V3v", "V3d", "hV4")
ROI_COLOURS = {
    "V1v": "#1f3b99", "V1d": "#1f3b99", "V2v": "#3f6fd1", "V2d": "#3f6fd1", "V3v": "#78a6e8", "V3d": "#78a6e8",
    "hV4": "#3fb7c4",
    "OFA": "#f4a3a3", "FFA-1": "#d62728", "FFA-2": "#a01010", "aTL-faces": "#ff6f6f", "mTL-faces": "#ff6f6f",
    "OPA": "#98df8a", "PPA": "#2ca02c", "RSC": "#17702a",
    "EBA": "#ff9f1c", "FBA-1": "#e07b00", "FBA-2": "#e07b00", "mTL-bodies": "#ffbb78",
    "OWFA": "#c5b0d5", "VWFA-1": "#9467bd", "VWFA-2": "#6a3d9a", "mfs-words": "#b39ddb", "mTL-words": "#b39ddb",
    "ventral-food": "#8c564b",
}
# display order of ROIs in tables and charts: early visual areas, then faces, places, bodies, words, food
ROI_ORDER = ("V1v", "V1d", "V2v", "V2d", "V3v", "V3d", "hV4", "OFA", "FFA-1", "FFA-2", "aTL-faces", "mTL-faces",
             "OPA", "PPA", "RSC", "EBA", "FBA-1", "FBA-2", "mTL-bodies", "OWFA", "VWFA-1", "VWFA-2", "mfs-words",
             "mTL-words", "ventral-food")


def roi_legend_name(roi: str) -> str | None:
    """The name a legend shows for ``roi``: ventral and dorsal halves of V1-V3 share one entry ('V1'),
    so the dorsal halves return None."""
    if roi in ("V1d", "V2d", "V3d"):
        return None
    return roi[:-1] if roi in ("V1v", "V2v", "V3v") else roi
