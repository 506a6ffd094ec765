"""What a synthesis run maximises: a target, described by a small JSON-able spec stored with every result.

A target is a weighted sum of *terms*; each term is the mean predicted response over a set of voxels:

* ``{"rois": ["FFA-1"]}`` - an ROI (the mean over its voxels); several names = their union;
  a name is an ROI (``FFA-1``), an ROI file (``floc-faces``: every voxel it labels) or a category (``faces``);
* ``{"voxels": [123]}`` - explicit voxels (one voxel from the explorer's voxel card; a concept's top voxels, with
  ``"concept": "a face"`` kept as its description);
* ``"weight"`` (default 1): ``[+1 FFA-1, -1 PPA]`` is a contrast, images one prefers and the other does not.

``subjects``: the target is computed per subject and averaged (voxel terms need exactly one subject);
``hemi``: ``lh`` / ``rh`` / None (both).

Because the encoders are linear in the embedding, a target is a linear function of the image embedding:
``objective(e) = e . d + c`` (:class:`Objective`), with ``d = mean_s sum_v w_sv W_s[v]``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError
from ..store import Workspace, require_subject
from ..surface.rois import FILE_CATEGORY, ROI_COLUMNS, ROI_ORDER

__all__ = ["parse_target", "normalise_spec", "target_label", "voxel_weights", "Objective", "CATEGORY_FILES",
           "target_choices"]

# "faces" -> floc-faces, ...: the words a user types for a category's ROI file
CATEGORY_GROUPS = {"faces": "floc-faces", "places": "floc-places", "bodies": "floc-bodies", "words": "floc-words",
                   "food": "food"}
CATEGORY_FILES = {**CATEGORY_GROUPS, **{c: f for f, c in FILE_CATEGORY.items()}}
_TERM = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*\*\s*)?(.+?)\s*$")


def parse_target(text: str, subjects: list[str], hemi: str | None = None) -> dict:
    """A target spec from a line a person types.

    ``FFA-1`` (an ROI), ``FFA-1,FFA-2`` (their union), ``FFA-1 - PPA`` or ``+FFA-1 -0.5*PPA`` (a weighted
    contrast), ``voxel:123`` (one voxel; one subject), ``faces`` / ``floc-faces`` (every voxel of a category's ROI
    file)."""
    text = (text or "").strip()
    if not text:
        raise InvalidInputError("the target is empty: name an ROI (e.g. FFA-1), a contrast (FFA-1 - PPA) or voxel:N")
    if text.startswith("voxel:"):
        try:
            voxel = int(text.split(":", 1)[1])
        except ValueError:
            raise InvalidInputError(f"target {text!r}: expected voxel:<number>") from None
        return normalise_spec({"terms": [{"voxels": [voxel], "weight": 1.0}], "subjects": subjects, "hemi": hemi})
    sign = 1.0
    if text[0] in "+-":
        sign, text = (-1.0 if text[0] == "-" else 1.0), text[1:].strip()
    pieces = re.split(r"\s+([+-])\s*", text)  # an operator has a space before it: "FFA-1 - PPA", "FFA-1 -PPA"
    terms = []
    for k in range(0, len(pieces), 2):
        if k:
            sign = -1.0 if pieces[k - 1] == "-" else 1.0
        m = _TERM.match(pieces[k])
        if m is None or not m.group(2).strip(",").strip():
            raise InvalidInputError(f"target {text!r}: cannot read the term {pieces[k]!r}")
        w, names = m.groups()
        terms.append({"rois": [n.strip() for n in names.split(",") if n.strip()],
                      "weight": sign * (float(w) if w else 1.0)})
    return normalise_spec({"terms": terms, "subjects": subjects, "hemi": hemi})


def normalise_spec(spec: dict) -> dict:
    """Check a spec's fields and give it one canonical form (so equal targets have equal keys)."""
    if not isinstance(spec, dict):
        raise InvalidInputError(f"a target spec is a dict, got {type(spec).__name__}")
    unknown = set(spec) - {"terms", "subjects", "hemi", "label"}
    if unknown:
        raise InvalidInputError(f"target spec: unknown field(s) {sorted(unknown)} (terms, subjects, hemi, label)")
    subjects = spec.get("subjects") or []
    if isinstance(subjects, str):
        subjects = [subjects]
    if not subjects:
        raise InvalidInputError("target spec: 'subjects' is empty (name at least one subject)")
    hemi = spec.get("hemi") or None
    if hemi not in (None, "lh", "rh"):
        raise InvalidInputError(f"target spec: hemi must be 'lh', 'rh' or empty, got {hemi!r}")
    terms = []
    for k, t in enumerate(spec.get("terms") or []):
        if not isinstance(t, dict) or ("rois" in t) == ("voxels" in t):
            raise InvalidInputError(f"target spec: term {k} needs exactly one of 'rois' or 'voxels', got {t!r}")
        try:
            weight = float(t.get("weight", 1.0))
        except (TypeError, ValueError):
            raise InvalidInputError(f"target spec: term {k} weight {t.get('weight')!r} is not a number") from None
        if weight == 0 or not np.isfinite(weight):
            raise InvalidInputError(f"target spec: term {k} has weight {weight} (use a finite, non-zero weight)")
        if "rois" in t:
            rois = [t["rois"]] if isinstance(t["rois"], str) else list(t["rois"])
            if not rois or not all(isinstance(r, str) and r.strip() for r in rois):
                raise InvalidInputError(f"target spec: term {k} has no ROI names: {t['rois']!r}")
            terms.append({"rois": sorted(r.strip() for r in rois), "weight": weight})
        else:
            try:
                voxels = sorted({int(v) for v in t["voxels"]})
            except (TypeError, ValueError):
                raise InvalidInputError(f"target spec: term {k} voxels must be integers, got {t['voxels']!r}") from None
            if not voxels:
                raise InvalidInputError(f"target spec: term {k} has no voxels")
            if len(subjects) != 1:
                raise InvalidInputError("target spec: voxel terms name one subject's voxels; give exactly one subject")
            term = {"voxels": voxels, "weight": weight}
            if t.get("concept"):
                term["concept"] = str(t["concept"])
            terms.append(term)
    if not terms:
        raise InvalidInputError("target spec: no terms (e.g. {'rois': ['FFA-1']})")
    out = {"terms": terms, "subjects": sorted(subjects), "hemi": hemi}
    out["label"] = spec.get("label") or target_label(out)
    return out


def target_label(spec: dict) -> str:
    """A short human name: ``FFA-1``, ``FFA-1 - PPA``, ``voxel 123``, ``'a face' (20 voxels)``; the subjects in brackets."""
    parts = []
    for k, t in enumerate(spec["terms"]):
        w = t["weight"]
        sign = "-" if w < 0 else ("+" if k else "")
        mag = "" if abs(w) == 1 else f"{abs(w):g}*"
        if "rois" in t:
            name = ",".join(t["rois"])
        elif t.get("concept"):
            name = f"'{t['concept']}' ({len(t['voxels'])} voxels)"
        else:
            name = f"voxel {t['voxels'][0]}" if len(t["voxels"]) == 1 else f"{len(t['voxels'])} voxels"
        parts.append(f"{sign} {mag}{name}".strip() if k else f"{sign}{mag}{name}")
    hemi = f" ({spec['hemi']})" if spec.get("hemi") else ""
    return " ".join(parts) + hemi + " [" + ", ".join(spec["subjects"]) + "]"


def target_choices(ws: Workspace, subjects: list[str]) -> list[str]:
    """What a target can name in every one of ``subjects``: the categories' ROI files (``faces``, ``places``, ...)
    first, then each ROI, in the usual order."""
    cols = ", ".join(f'"{c}"' for c in ROI_COLUMNS)
    names = None
    for s in subjects:
        vox = ws.query(f"SELECT {cols} FROM voxels WHERE subject = ?", [require_subject(ws, s)])
        have = {v for c in ROI_COLUMNS for v in vox[c].dropna().unique()}
        have |= {w for w, f in CATEGORY_GROUPS.items() if vox[f].notna().any()}
        names = have if names is None else names & have
    order = {n: k for k, n in enumerate(ROI_ORDER)}
    groups = [g for g in CATEGORY_GROUPS if g in (names or ())]
    rois = sorted((n for n in names or () if n not in CATEGORY_GROUPS), key=lambda n: (order.get(n, len(order)), n))
    return groups + rois


def _roi_mask(vox, name: str) -> np.ndarray:
    key = name.strip()
    if key.lower() in CATEGORY_FILES:
        key = CATEGORY_FILES[key.lower()]
    if key in ROI_COLUMNS:
        return vox[key].notna().to_numpy()
    hits = np.zeros(len(vox), bool)
    for col in ROI_COLUMNS:
        hits |= (vox[col] == key).to_numpy()
    return hits


def voxel_weights(ws: Workspace, spec: dict) -> dict[str, np.ndarray]:
    """Per subject, the weight of every voxel in the target (n_voxels,): term weight / term size on the term's
    voxels. Every named ROI must exist in every subject (the error names the ROI and the subject)."""
    spec = normalise_spec(spec)
    out = {}
    for subject in spec["subjects"]:
        subject = require_subject(ws, subject)
        cols = ", ".join(f'"{c}"' for c in ROI_COLUMNS)
        vox = ws.query(f"SELECT voxel, hemi, {cols} FROM voxels WHERE subject = ? ORDER BY voxel", [subject])
        hemi_ok = np.ones(len(vox), bool) if spec["hemi"] is None else (vox.hemi == spec["hemi"]).to_numpy()
        w = np.zeros(len(vox), np.float64)
        for t in spec["terms"]:
            if "rois" in t:
                m = np.zeros(len(vox), bool)
                for name in t["rois"]:
                    hit = _roi_mask(vox, name) & hemi_ok
                    if not hit.any():
                        known = sorted({v for c in ROI_COLUMNS for v in vox[c].dropna().unique()})
                        raise InvalidInputError(f"ROI {name!r} has no voxels in {subject}"
                                                + (f" ({spec['hemi']})" if spec["hemi"] else "")
                                                + f"; known ROIs: {', '.join(known)}")
                    m |= hit
            else:
                bad = [v for v in t["voxels"] if not 0 <= v < len(vox)]
                if bad:
                    raise InvalidInputError(f"voxel {bad[0]} is not a voxel of {subject} (0..{len(vox) - 1})")
                m = np.zeros(len(vox), bool)
                m[t["voxels"]] = True
            w[m] += t["weight"] / m.sum()
        out[subject] = w.astype(np.float32)
    return out


@dataclass
class Objective:
    """A target through a set of linear encoders: ``value(e) = e @ direction + offset`` (mean over subjects),
    in the units of the betas the encoders were fitted on. ``encoder_ids`` records which encoders made it."""

    direction: np.ndarray  # (dim,)
    offset: float
    encoder_ids: dict

    @classmethod
    def from_encoders(cls, weights: dict[str, np.ndarray], encoders: dict[str, tuple[np.ndarray, np.ndarray, str]]):
        """``weights``: subject -> voxel weights (:func:`voxel_weights`); ``encoders``: subject -> (W (n_voxels,
        dim), intercept (n_voxels,), id)."""
        d, c = [], []
        for s, w in weights.items():
            W, b, _ = encoders[s]
            if W.shape[0] != len(w):
                raise InvalidInputError(f"the encoder of {s} has {W.shape[0]} voxels, the target {len(w)}")
            d.append(w @ W)
            c.append(float(w @ b))
        return cls(np.mean(d, 0).astype(np.float32), float(np.mean(c)), {s: encoders[s][2] for s in weights})

    def __call__(self, emb):
        """Embeddings (n, dim), numpy or torch (differentiable) -> (n,) objective values."""
        if isinstance(emb, np.ndarray):
            return emb @ self.direction + self.offset
        import torch

        return emb @ torch.as_tensor(self.direction, device=emb.device, dtype=emb.dtype) + self.offset
