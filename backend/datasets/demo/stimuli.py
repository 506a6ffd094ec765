"""Procedural stimulus world: NSD-like images with captions, object masks and ground truth.

Every image is a deterministic function of ``(seed, index)``: a background (plain, indoor or
outdoor scene; colour; texture) and one to three objects drawn from categories that visual
cortex is selective for (faces, bodies, places/buildings, food, written words) plus generic
objects.  Each object varies in colour, size and position across the visual field.  For each
image we keep 3-5 COCO-like captions, a per-object segmentation mask and the attributes.

Images are drawn at twice the stored resolution and box-downsampled (anti-aliasing).
Visual-field coordinates ``x, y`` run from -1 (left / bottom) to +1 (right / top); the image
spans ``FIELD_DEG`` (:mod:`backend.datasets.image_features`) degrees of visual angle, as in NSD (8.4 deg).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont


CATEGORIES = ("face", "body", "place", "food", "word", "object")
BACKGROUNDS = ("plain", "indoor", "outdoor")

COLOURS = {
    "red": (200, 40, 40), "green": (50, 160, 60), "blue": (40, 80, 200), "yellow": (230, 200, 40),
    "orange": (235, 130, 30), "purple": (130, 60, 170), "pink": (230, 120, 170), "brown": (130, 80, 40),
    "black": (25, 25, 25), "white": (240, 240, 240), "grey": (128, 128, 128),
}
BG_COLOURS = {
    "grey": (150, 150, 150), "white": (225, 225, 220), "black": (35, 35, 35), "blue": (110, 140, 200),
    "green": (120, 170, 110), "yellow": (225, 210, 140), "pink": (220, 170, 180), "beige": (210, 195, 165),
}
SKIN = [(255, 220, 185), (235, 190, 150), (200, 150, 110), (160, 110, 75), (110, 75, 50)]
HAIR = {"black": (30, 25, 20), "brown": (110, 70, 35), "blond": (225, 195, 110), "red": (170, 60, 30),
        "grey": (160, 160, 160)}

KINDS = {
    "face": ("face", "smiling face", "man's face", "woman's face", "child's face"),
    "body": ("person standing", "person walking", "person waving", "person running"),
    "place": ("house", "skyscraper", "barn", "church"),
    "food": ("apple", "banana", "pizza", "burger", "cake", "carrot", "orange fruit"),
    "word": ("word",),
    "object": ("ball", "cup", "car", "chair", "clock", "umbrella", "lamp", "key"),
}
WORDS = ("stop", "open", "hello", "music", "cat", "exit", "love", "park", "book", "sale", "taxi",
         "cafe", "home", "zoo", "milk", "rain", "gold", "star", "hotel", "bus")
# Words a caption uses for a whole category (so category prompts are understood).
CATEGORY_WORDS = {
    "face": ("a face", "a human face", "a person's face"),
    "body": ("a person", "a human body", "a human figure"),
    "place": ("a building", "a house", "a building"),
    "food": ("food", "some food", "a piece of food"),
    "word": ("text", "written text", "a word"),
    "object": ("an object", "a thing", "an object"),
}
# Words that name a category in a caption (the checks "does this caption name a face?" use them)
CATEGORY_LEXICON = {
    "face": ("face", "faces"),
    "body": ("person", "people", "human", "body", "figure", "man", "woman"),
    "place": ("building", "buildings", "house", "houses", "skyscraper", "barn", "church", "place"),
    "food": ("food", "apple", "banana", "pizza", "burger", "cake", "carrot", "fruit"),
    "word": ("word", "words", "text", "sign", "written", '"'),
    "object": ("object", "thing", "ball", "cup", "car", "chair", "clock", "umbrella", "lamp", "key"),
}
INDOOR = ("a room", "a kitchen", "a hallway", "an office")
OUTDOOR = ("a field", "a park", "a meadow", "a street")


@dataclass
class StimObject:
    """One object in a stimulus. ``x, y`` in [-1, 1] (visual field, +y up); ``size`` = radius / half-image."""
    category: str
    kind: str
    colour: str
    x: float
    y: float
    size: float
    text: str = ""
    area: float = 0.0  # visible fraction of the image covered (from the mask, after occlusion)


@dataclass
class Stimulus:
    """One procedural image: background, its objects (``StimObject``) and its captions."""
    index: int
    background: str
    bg_colour: str
    texture: str
    setting: str  # "a kitchen", "a field", or "" for plain
    objects: list[StimObject] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)

    def attributes(self) -> dict:
        d = asdict(self)
        d.pop("captions")
        return d


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def position_phrase(x: float, y: float) -> str:
    """Where (x, y) lies in words ('on the left', 'in the upper right', ...)."""
    h = "left" if x < -0.33 else "right" if x > 0.33 else ""
    v = "upper" if y > 0.33 else "lower" if y < -0.33 else ""
    if not h and not v:
        return "in the centre"
    if h and v:
        return f"in the {v} {h}"
    if h:
        return f"on the {h}"
    return "at the top" if v == "upper" else "at the bottom"


def describe(obj: StimObject, rng: np.random.Generator, category_word_p: float = 0.35) -> str:
    """A noun phrase for one object; with probability ``category_word_p`` its category word."""
    if rng.random() < category_word_p:
        if obj.category == "word":  # its text, or what the category is called ("text", "a word", ...)
            return str(rng.choice([f'the word "{obj.text}"', *CATEGORY_WORDS["word"]]))
        return str(rng.choice(CATEGORY_WORDS[obj.category]))
    c, k = obj.colour, obj.kind
    if obj.category == "face":
        hair = f"with {c} hair" if c in HAIR else ""
        return f"{_a(k)} {hair}".strip()
    if obj.category == "body":
        return f"{_a(k)} in a {c} shirt"
    if obj.category == "word":
        return str(rng.choice([f'the word "{obj.text}"', f'a sign that says "{obj.text}"',
                               f'the word "{obj.text}" written in {c}']))
    if obj.category == "food" and k == "orange fruit":
        return "an orange fruit"
    return f"{_a(c)} {k}" if rng.random() < 0.8 else _a(k)


def background_phrase(s: Stimulus, rng: np.random.Generator) -> str:
    """The background of ``s`` in words ('in a kitchen', 'on a plain blue background', ...)."""
    if s.background == "plain":
        return str(rng.choice([f"on a {s.bg_colour} background", f"against a plain {s.bg_colour} background",
                               f"on {s.bg_colour}"]))
    if s.background == "indoor":
        return str(rng.choice([f"in {s.setting}", f"inside {s.setting}", "indoors"]))
    return str(rng.choice([f"in {s.setting}", f"outdoors in {s.setting}", "outside under a blue sky"]))


def make_captions(s: Stimulus, rng: np.random.Generator) -> list[str]:
    """3-5 captions from a small grammar (COCO-like)."""
    n = int(rng.integers(3, 6))
    caps: list[str] = []
    tries = 0
    while len(caps) < n and tries < 50:
        tries += 1
        objs = list(s.objects)
        rng.shuffle(objs)
        phrases = [describe(o, rng) for o in objs]
        form = int(rng.integers(0, 5))
        if form == 0:
            body = " and ".join(phrases) if len(phrases) < 3 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
            cap = f"{body} {background_phrase(s, rng)}"
        elif form == 1 and len(phrases) >= 2:
            rel = str(rng.choice(["next to", "beside", "near", "with"]))
            cap = f"{phrases[0]} {rel} {phrases[1]} {background_phrase(s, rng)}"
        elif form == 2:
            cap = f"a picture of {phrases[0]} {position_phrase(objs[0].x, objs[0].y)}"
        elif form == 3:
            cap = f"{phrases[0]} {position_phrase(objs[0].x, objs[0].y)} {background_phrase(s, rng)}"
        else:
            what = "an image" if s.background == "plain" else "a scene"
            cap = f"{what} with {' and '.join(phrases)}"
        cap = " ".join(cap.split())
        if cap not in caps:
            caps.append(cap)
    return caps


# ----------------------------------------------------------------------------- drawing
_FONTS: dict[int, ImageFont.ImageFont] = {}


def _font(size: int):
    if size not in _FONTS:
        _FONTS[size] = ImageFont.load_default(size=size)
    return _FONTS[size]


class _Canvas:
    """Draws an object into the RGB image and, with the same shapes, into the label mask."""

    def __init__(self, img: Image.Image, mask: Image.Image):
        self.d = ImageDraw.Draw(img)
        self.m = ImageDraw.Draw(mask)
        self.label = 0

    def ellipse(self, box, fill, to_mask=True):
        self.d.ellipse(box, fill=fill)
        if to_mask:
            self.m.ellipse(box, fill=self.label)

    def rect(self, box, fill, to_mask=True):
        self.d.rectangle(box, fill=fill)
        if to_mask:
            self.m.rectangle(box, fill=self.label)

    def poly(self, pts, fill, to_mask=True):
        self.d.polygon(pts, fill=fill)
        if to_mask:
            self.m.polygon(pts, fill=self.label)

    def line(self, pts, fill, width, to_mask=True):
        self.d.line(pts, fill=fill, width=width)
        if to_mask:
            self.m.line(pts, fill=self.label, width=width)

    def pieslice(self, box, start, end, fill, to_mask=True):
        self.d.pieslice(box, start, end, fill=fill)
        if to_mask:
            self.m.pieslice(box, start, end, fill=self.label)


def _draw_face(c: _Canvas, cx, cy, r, o: StimObject, rng):
    skin = SKIN[int(rng.integers(len(SKIN)))]
    hair = HAIR.get(o.colour, (60, 40, 20))
    long_hair = o.kind == "woman's face"
    if long_hair:
        c.ellipse((cx - 1.05 * r, cy - 1.1 * r, cx + 1.05 * r, cy + 1.2 * r), hair)
    w = 0.78 * r if o.kind != "child's face" else 0.85 * r
    c.ellipse((cx - w, cy - r, cx + w, cy + r), skin)
    c.pieslice((cx - w, cy - r * 1.02, cx + w, cy + 0.2 * r), 180, 360, hair)  # hair cap
    for sx in (-1, 1):
        ex, ey = cx + sx * 0.33 * r, cy - 0.08 * r
        c.ellipse((ex - 0.16 * r, ey - 0.09 * r, ex + 0.16 * r, ey + 0.09 * r), (250, 250, 250), False)
        c.ellipse((ex - 0.07 * r, ey - 0.07 * r, ex + 0.07 * r, ey + 0.07 * r), (30, 30, 30), False)
        c.line([(ex - 0.17 * r, ey - 0.2 * r), (ex + 0.17 * r, ey - 0.22 * r)], hair, max(1, int(0.06 * r)), False)
    c.line([(cx, cy), (cx - 0.06 * r, cy + 0.25 * r), (cx + 0.05 * r, cy + 0.27 * r)], (120, 70, 50),
           max(1, int(0.04 * r)), False)
    if o.kind in ("smiling face", "child's face") or rng.random() < 0.3:
        c.d.arc((cx - 0.35 * r, cy + 0.15 * r, cx + 0.35 * r, cy + 0.6 * r), 20, 160, fill=(150, 30, 40),
                width=max(1, int(0.07 * r)))
    else:
        c.line([(cx - 0.25 * r, cy + 0.5 * r), (cx + 0.25 * r, cy + 0.5 * r)], (150, 30, 40),
               max(1, int(0.07 * r)), False)
    if o.kind == "man's face" and rng.random() < 0.5:
        c.pieslice((cx - 0.6 * w, cy + 0.2 * r, cx + 0.6 * w, cy + 1.0 * r), 0, 180, hair)


def _draw_body(c: _Canvas, cx, cy, r, o: StimObject, rng):
    shirt = COLOURS[o.colour]
    skin = SKIN[int(rng.integers(len(SKIN)))]
    trousers = (40, 40, 90) if rng.random() < 0.5 else (60, 50, 40)
    lw = max(2, int(0.18 * r))
    head = 0.2 * r
    top = cy - r
    c.ellipse((cx - head, top, cx + head, top + 2 * head), skin)
    sh_y = top + 2.2 * head
    hip_y = cy + 0.15 * r
    c.rect((cx - 0.28 * r, sh_y, cx + 0.28 * r, hip_y), shirt)
    stride = {"person walking": 0.3, "person running": 0.5}.get(o.kind, 0.12)
    c.line([(cx - 0.12 * r, hip_y), (cx - stride * r, cy + r)], trousers, lw)
    c.line([(cx + 0.12 * r, hip_y), (cx + stride * r, cy + r)], trousers, lw)
    if o.kind == "person waving":
        c.line([(cx + 0.25 * r, sh_y + 0.05 * r), (cx + 0.55 * r, sh_y - 0.45 * r)], shirt, lw)
    else:
        c.line([(cx + 0.25 * r, sh_y + 0.05 * r), (cx + (0.35 + stride / 2) * r, hip_y + 0.1 * r)], shirt, lw)
    c.line([(cx - 0.25 * r, sh_y + 0.05 * r), (cx - (0.35 + stride / 2) * r, hip_y + 0.1 * r)], shirt, lw)


def _draw_place(c: _Canvas, cx, cy, r, o: StimObject, rng):
    wall = COLOURS[o.colour]
    win = (180, 210, 240)
    if o.kind == "skyscraper":
        w = 0.45 * r
        c.rect((cx - w, cy - r, cx + w, cy + r), wall)
        for yy in np.arange(cy - 0.85 * r, cy + 0.8 * r, 0.25 * r):
            for xx in (cx - 0.28 * r, cx + 0.05 * r):
                c.rect((xx, yy, xx + 0.2 * r, yy + 0.13 * r), win, False)
        return
    base_top = cy - 0.1 * r
    c.rect((cx - 0.8 * r, base_top, cx + 0.8 * r, cy + 0.85 * r), wall)
    roof = (140, 40, 30) if o.kind != "barn" else (90, 30, 20)
    if o.kind == "church":
        c.rect((cx - 0.15 * r, cy - r, cx + 0.15 * r, base_top), wall)
        c.poly([(cx - 0.9 * r, base_top), (cx, cy - 0.55 * r), (cx + 0.9 * r, base_top)], roof)
        c.line([(cx, cy - r - 0.1 * r), (cx, cy - 0.75 * r)], (40, 40, 40), max(1, int(0.05 * r)))
    else:
        c.poly([(cx - 0.95 * r, base_top), (cx, cy - 0.85 * r), (cx + 0.95 * r, base_top)], roof)
    c.rect((cx - 0.15 * r, cy + 0.35 * r, cx + 0.15 * r, cy + 0.85 * r), (90, 55, 30), False)
    for sx in (-1, 1):
        c.rect((cx + sx * 0.55 * r - 0.15 * r, cy + 0.05 * r, cx + sx * 0.55 * r + 0.15 * r, cy + 0.3 * r), win, False)


def _draw_food(c: _Canvas, cx, cy, r, o: StimObject, rng):
    col = COLOURS[o.colour]
    k = o.kind
    if k in ("apple", "orange fruit"):
        c.ellipse((cx - 0.8 * r, cy - 0.7 * r, cx + 0.8 * r, cy + 0.8 * r), col)
        c.line([(cx, cy - 0.6 * r), (cx + 0.1 * r, cy - 0.95 * r)], (90, 60, 20), max(1, int(0.08 * r)))
        c.ellipse((cx + 0.1 * r, cy - 0.95 * r, cx + 0.45 * r, cy - 0.75 * r), (60, 150, 50))
    elif k == "banana":
        c.d.arc((cx - r, cy - 1.2 * r, cx + r, cy + 0.6 * r), 20, 160, fill=col, width=max(2, int(0.35 * r)))
        c.m.arc((cx - r, cy - 1.2 * r, cx + r, cy + 0.6 * r), 20, 160, fill=c.label, width=max(2, int(0.35 * r)))
    elif k == "pizza":
        c.poly([(cx - 0.8 * r, cy - 0.7 * r), (cx + 0.8 * r, cy - 0.7 * r), (cx, cy + 0.9 * r)], (235, 190, 90))
        c.rect((cx - 0.85 * r, cy - 0.85 * r, cx + 0.85 * r, cy - 0.65 * r), (190, 120, 50))
        for px, py in ((-0.3, -0.4), (0.25, -0.35), (0.0, 0.1)):
            c.ellipse((cx + (px - 0.12) * r, cy + (py - 0.12) * r, cx + (px + 0.12) * r, cy + (py + 0.12) * r),
                      (180, 40, 30), False)
    elif k == "burger":
        c.pieslice((cx - 0.9 * r, cy - 0.8 * r, cx + 0.9 * r, cy + 0.2 * r), 180, 360, (215, 150, 70))
        c.rect((cx - 0.9 * r, cy - 0.3 * r, cx + 0.9 * r, cy - 0.1 * r), (60, 170, 60))
        c.rect((cx - 0.85 * r, cy - 0.1 * r, cx + 0.85 * r, cy + 0.25 * r), (100, 50, 25))
        c.rect((cx - 0.9 * r, cy + 0.25 * r, cx + 0.9 * r, cy + 0.55 * r), (215, 150, 70))
    elif k == "cake":
        c.rect((cx - 0.8 * r, cy - 0.3 * r, cx + 0.8 * r, cy + 0.7 * r), col)
        c.rect((cx - 0.8 * r, cy - 0.45 * r, cx + 0.8 * r, cy - 0.25 * r), (250, 245, 235))
        c.rect((cx - 0.05 * r, cy - 0.8 * r, cx + 0.05 * r, cy - 0.45 * r), (240, 220, 90))
    else:  # carrot
        c.poly([(cx - 0.3 * r, cy - 0.7 * r), (cx + 0.3 * r, cy - 0.7 * r), (cx, cy + r)], (240, 120, 20))
        c.poly([(cx - 0.3 * r, cy - 0.7 * r), (cx, cy - r), (cx + 0.3 * r, cy - 0.7 * r)], (60, 160, 50))


def _draw_word(c: _Canvas, cx, cy, r, o: StimObject, rng):
    col = COLOURS[o.colour]
    size = max(8, int(0.9 * r))
    font = _font(size)
    x0, y0, x1, y1 = c.d.textbbox((0, 0), o.text, font=font)
    tx, ty = cx - (x1 + x0) / 2, cy - (y1 + y0) / 2
    if rng.random() < 0.5:  # on a sign
        pad = 0.15 * r
        sign = (245, 245, 240) if sum(col) < 400 else (40, 40, 40)
        c.rect((tx + x0 - pad, ty + y0 - pad, tx + x1 + pad, ty + y1 + pad), sign)
    c.d.text((tx, ty), o.text, font=font, fill=col)
    c.m.text((tx, ty), o.text, font=font, fill=c.label)


def _draw_object(c: _Canvas, cx, cy, r, o: StimObject, rng):
    col = COLOURS[o.colour]
    k = o.kind
    dark = (40, 40, 40)
    lw = max(1, int(0.08 * r))
    if k == "ball":
        c.ellipse((cx - 0.8 * r, cy - 0.8 * r, cx + 0.8 * r, cy + 0.8 * r), col)
        c.line([(cx - 0.8 * r, cy), (cx + 0.8 * r, cy)], (250, 250, 250), lw, False)
    elif k == "cup":
        c.rect((cx - 0.5 * r, cy - 0.6 * r, cx + 0.4 * r, cy + 0.7 * r), col)
        c.d.arc((cx + 0.15 * r, cy - 0.35 * r, cx + 0.85 * r, cy + 0.35 * r), 270, 90, fill=col, width=lw * 2)
        c.m.arc((cx + 0.15 * r, cy - 0.35 * r, cx + 0.85 * r, cy + 0.35 * r), 270, 90, fill=c.label, width=lw * 2)
    elif k == "car":
        c.rect((cx - r, cy - 0.1 * r, cx + r, cy + 0.4 * r), col)
        c.poly([(cx - 0.55 * r, cy - 0.1 * r), (cx - 0.35 * r, cy - 0.5 * r), (cx + 0.35 * r, cy - 0.5 * r),
                (cx + 0.6 * r, cy - 0.1 * r)], col)
        for sx in (-0.55, 0.55):
            c.ellipse((cx + (sx - 0.22) * r, cy + 0.2 * r, cx + (sx + 0.22) * r, cy + 0.64 * r), dark)
    elif k == "chair":
        c.rect((cx - 0.5 * r, cy - r, cx - 0.35 * r, cy + r), col)
        c.rect((cx - 0.5 * r, cy - 0.05 * r, cx + 0.5 * r, cy + 0.12 * r), col)
        c.rect((cx + 0.35 * r, cy, cx + 0.5 * r, cy + r), col)
    elif k == "clock":
        c.ellipse((cx - 0.85 * r, cy - 0.85 * r, cx + 0.85 * r, cy + 0.85 * r), col)
        c.ellipse((cx - 0.7 * r, cy - 0.7 * r, cx + 0.7 * r, cy + 0.7 * r), (245, 245, 240), False)
        c.line([(cx, cy), (cx, cy - 0.55 * r)], dark, lw, False)
        c.line([(cx, cy), (cx + 0.4 * r, cy + 0.1 * r)], dark, lw, False)
    elif k == "umbrella":
        c.pieslice((cx - r, cy - 0.8 * r, cx + r, cy + 0.6 * r), 180, 360, col)
        c.line([(cx, cy - 0.1 * r), (cx, cy + 0.8 * r)], dark, lw)
    elif k == "lamp":
        c.poly([(cx - 0.5 * r, cy - 0.2 * r), (cx - 0.25 * r, cy - 0.9 * r), (cx + 0.25 * r, cy - 0.9 * r),
                (cx + 0.5 * r, cy - 0.2 * r)], col)
        c.line([(cx, cy - 0.2 * r), (cx, cy + 0.8 * r)], dark, lw)
        c.rect((cx - 0.35 * r, cy + 0.75 * r, cx + 0.35 * r, cy + 0.9 * r), dark)
    else:  # key
        c.ellipse((cx - 0.8 * r, cy - 0.35 * r, cx - 0.1 * r, cy + 0.35 * r), col)
        c.rect((cx - 0.15 * r, cy - 0.08 * r, cx + 0.85 * r, cy + 0.08 * r), col)
        c.rect((cx + 0.55 * r, cy, cx + 0.68 * r, cy + 0.3 * r), col)


_DRAW = {"face": _draw_face, "body": _draw_body, "place": _draw_place, "food": _draw_food,
         "word": _draw_word, "object": _draw_object}
_FOOD_COLOURS = {"apple": ("red", "green", "yellow"), "orange fruit": ("orange",), "banana": ("yellow",),
                 "pizza": ("orange",), "burger": ("brown",), "cake": ("pink", "brown", "white", "yellow"),
                 "carrot": ("orange",)}


def _texture(rng, size: int, base: np.ndarray, kind: str) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if kind == "stripes":
        f, th = rng.uniform(4, 12), rng.uniform(0, np.pi)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * f * (xx * np.cos(th) + yy * np.sin(th)))
    elif kind == "checks":
        f = int(rng.integers(3, 9))
        t = ((np.floor(xx * f) + np.floor(yy * f)) % 2).astype(np.float32)
    elif kind == "noise":
        small = rng.random((8, 8)).astype(np.float32)
        t = np.asarray(Image.fromarray((small * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC),
                       dtype=np.float32) / 255
    else:
        return np.broadcast_to(base, (size, size, 3)).astype(np.float32)
    amp = rng.uniform(15, 35)
    return np.clip(base[None, None, :] + amp * (t[..., None] - 0.5), 0, 255)


def _scene_background(rng, s: Stimulus, size: int) -> np.ndarray:
    if s.background == "plain":
        base = np.array(BG_COLOURS[s.bg_colour], np.float32)
        return _texture(rng, size, base, s.texture)
    img = np.empty((size, size, 3), np.float32)
    if s.background == "outdoor":
        horizon = int(size * rng.uniform(0.45, 0.65))
        sky = np.array([110, 160, 230], np.float32) + rng.uniform(-20, 20, 3)
        ground = np.array(BG_COLOURS[s.bg_colour], np.float32) * np.array([0.7, 1.0, 0.6])
        grad = np.linspace(0.85, 1.1, horizon, dtype=np.float32)[:, None, None]
        img[:horizon] = np.clip(sky[None, None] * grad, 0, 255)
        img[horizon:] = _texture(rng, size, ground, "noise")[horizon:]
        return img
    wall = np.array(BG_COLOURS[s.bg_colour], np.float32)
    floor_y = int(size * rng.uniform(0.6, 0.75))
    img[:] = _texture(rng, size, wall, s.texture if s.texture != "plain" else "stripes")
    img[floor_y:] = np.array([120, 90, 60], np.float32) + rng.uniform(-20, 20, 3)
    # a perspective line and a window make it a room
    x = int(size * rng.uniform(0.15, 0.85))
    img[: floor_y, max(0, x - 1): x + 1] *= 0.75
    return img


def sample_stimulus(seed: int, index: int) -> tuple[Stimulus, np.random.Generator]:
    """Draw the attributes (no pixels) of stimulus ``index`` of the world with ``seed``."""
    rng = np.random.default_rng([seed, index])
    bg = str(rng.choice(BACKGROUNDS, p=[0.4, 0.3, 0.3]))
    s = Stimulus(index=index, background=bg, bg_colour=str(rng.choice(list(BG_COLOURS))),
                 texture=str(rng.choice(["plain", "stripes", "checks", "noise"], p=[0.4, 0.2, 0.15, 0.25])),
                 setting={"plain": "", "indoor": str(rng.choice(INDOOR)), "outdoor": str(rng.choice(OUTDOOR))}[bg])
    n_obj = int(rng.choice([1, 2, 3], p=[0.45, 0.35, 0.2]))
    cats = rng.choice(CATEGORIES, size=n_obj, p=[0.2, 0.16, 0.16, 0.16, 0.16, 0.16])
    for cat in cats:
        kind = str(rng.choice(KINDS[cat]))
        if cat == "face":
            colour = str(rng.choice(list(HAIR)))
        elif cat == "food":
            colour = str(rng.choice(_FOOD_COLOURS[kind]))
        else:
            colour = str(rng.choice([c for c in COLOURS if c not in ("grey",)]))
        size = float(rng.uniform(0.18, 0.5) if n_obj > 1 else rng.uniform(0.22, 0.65))
        lim = 1 - size * 0.8
        x, y = (float(v) for v in rng.uniform(-lim, lim, 2))
        text = str(rng.choice(WORDS)) if cat == "word" else ""
        s.objects.append(StimObject(str(cat), kind, colour, x, y, size, text))
    return s, rng


def render_stimulus(seed: int, index: int, size: int = 128, with_captions: bool = True
                    ) -> tuple[np.ndarray, np.ndarray, Stimulus]:
    """Render stimulus ``index``.

    Returns
    -------
    image : (size, size, 3) uint8
    mask : (size, size) uint8, 0 = background, k = k-th object of ``stim.objects`` (later objects occlude)
    stim : Stimulus with attributes, visible areas and captions
    """
    s, rng = sample_stimulus(seed, index)
    return _render(s, rng, size, with_captions)


def _render(s: Stimulus, rng: np.random.Generator, size: int, with_captions: bool):
    big = 2 * size
    bg = _scene_background(rng, s, big)
    img = Image.fromarray(bg.astype(np.uint8))
    mask = Image.new("L", (big, big), 0)
    canvas = _Canvas(img, mask)
    for k, o in enumerate(s.objects, start=1):
        canvas.label = k
        cx = (o.x + 1) / 2 * big
        cy = (1 - o.y) / 2 * big
        _DRAW[o.category](canvas, cx, cy, o.size * big / 2, o, rng)
    image = np.asarray(img.reduce(2))
    m = np.asarray(mask)[::2, ::2].copy()
    counts = np.bincount(m.ravel(), minlength=len(s.objects) + 1)
    for k, o in enumerate(s.objects, start=1):
        o.area = float(counts[k] / m.size)
    if with_captions:
        s.captions = make_captions(s, rng)
    return image, m, s


# where a composed object goes, in words (visual field x, y)
PLACES = {"centre": (0.0, 0.0), "left": (-0.5, 0.0), "right": (0.5, 0.0), "top": (0.0, 0.5), "bottom": (0.0, -0.5),
          "upper left": (-0.5, 0.5), "upper right": (0.5, 0.5), "lower left": (-0.5, -0.5),
          "lower right": (0.5, -0.5)}


def compose_stimulus(objects: list[dict], background: str = "plain", seed: int = 0, size: int = 128
                     ) -> tuple[np.ndarray, np.ndarray, Stimulus]:
    """Draw a new image from the world's grammar with the objects you choose.

    Parameters
    ----------
    objects : list of dict
        Each: ``category`` (one of ``CATEGORIES``) and optionally ``kind`` (one of ``KINDS[category]``),
        ``place`` (a key of ``PLACES``) or ``x, y`` in [-1, 1], ``size`` (radius / half-image, 0.1-0.7),
        ``colour``, ``text`` (word objects). What is not given is drawn from ``seed``.
    background : str
        ``plain``, ``indoor`` or ``outdoor``.

    Returns the same as :func:`render_stimulus`: image, object mask (k = k-th object), the Stimulus.
    """
    from ...errors import InvalidInputError

    if background not in BACKGROUNDS:
        raise InvalidInputError(f"background must be one of {BACKGROUNDS}, got {background!r}")
    if not objects or len(objects) > 4:
        raise InvalidInputError(f"compose 1 to 4 objects, got {len(objects) if objects else 0}")
    rng = np.random.default_rng([seed, 9_999_999])
    s = Stimulus(index=-1, background=background, bg_colour=str(rng.choice(list(BG_COLOURS))),
                 texture=str(rng.choice(["plain", "stripes", "checks", "noise"], p=[0.4, 0.2, 0.15, 0.25])),
                 setting={"plain": "", "indoor": str(rng.choice(INDOOR)),
                          "outdoor": str(rng.choice(OUTDOOR))}[background])
    for k, spec in enumerate(objects):
        cat = spec.get("category")
        if cat not in CATEGORIES:
            raise InvalidInputError(f"object {k + 1}: category must be one of {CATEGORIES}, got {cat!r}")
        kind = spec.get("kind") or str(rng.choice(KINDS[cat]))
        if kind not in KINDS[cat]:
            raise InvalidInputError(f"object {k + 1}: kind of a {cat} must be one of {KINDS[cat]}, got {kind!r}")
        if "place" in spec:
            if spec["place"] not in PLACES:
                raise InvalidInputError(f"object {k + 1}: place must be one of {tuple(PLACES)}, got {spec['place']!r}")
            x, y = PLACES[spec["place"]]
        else:
            x, y = float(spec.get("x", rng.uniform(-0.6, 0.6))), float(spec.get("y", rng.uniform(-0.6, 0.6)))
        r = float(spec.get("size", 0.35 if len(objects) > 1 else 0.5))
        if not (-1 <= x <= 1 and -1 <= y <= 1 and 0.1 <= r <= 0.7):
            raise InvalidInputError(f"object {k + 1}: x, y must lie in [-1, 1] and size in [0.1, 0.7], "
                                    f"got x={x}, y={y}, size={r}")
        if cat == "face":
            colours = list(HAIR)
        elif cat == "food":
            colours = list(_FOOD_COLOURS[kind])
        else:
            colours = [c for c in COLOURS if c != "grey"]
        colour = spec.get("colour") or str(rng.choice(colours))
        if colour not in colours:
            raise InvalidInputError(f"object {k + 1}: colour of a {kind} must be one of {colours}, got {colour!r}")
        text = str(spec.get("text") or rng.choice(WORDS)) if cat == "word" else ""
        s.objects.append(StimObject(cat, kind, colour, x, y, r, text))
    return _render(s, rng, size, with_captions=True)
