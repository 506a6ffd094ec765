"""A corpus of hostile input, each case with the message a user sees: uploads, search strings, links, model
folders. Nothing raises a traceback; nothing stored changes."""
from __future__ import annotations

import io
import pickle
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from backend.attention.image import load_image_file
from backend.captions.search import CaptionIndex
from backend.errors import InvalidInputError

ROOT = Path(__file__).resolve().parent.parent


def _png(size=(64, 64), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, 128 if mode != "RGB" else (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


def _claims(png: bytes, width: int, height: int) -> bytes:
    """The same PNG with its header claiming another size (a decompression bomb costs nothing to make)."""
    ihdr = png[12:29]  # b"IHDR" + 13 bytes of data
    data = struct.pack(">II", width, height) + ihdr[12:]
    chunk = b"IHDR" + data
    return png[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + png[33:]


UPLOADS = [
    ("not an image", b"hello, this is text", "is not a readable PNG or JPEG image"),
    ("truncated PNG", _png()[:60], "is not a readable PNG or JPEG image"),
    ("20,000 x 20,000 decompression bomb", _claims(_png(), 20_000, 20_000), "larger than 25 megapixels"),
    ("6,000 x 6,000 image", _claims(_png(), 6_000, 6_000), "6000x6000 pixels; images up to 25 megapixels"),
    ("200 MB file", b"\x89PNG" + b"\0" * 200_000_000, "is 200 MB; images up to 25 MB"),
    ("GIF", (lambda b: (Image.new("RGB", (32, 32)).save(b, "GIF"), b.getvalue())[1])(io.BytesIO()), "is a GIF image"),
    ("tiny", _png((8, 8)), "at least 16x16"),
]


@pytest.mark.parametrize("case,data,message", UPLOADS, ids=[u[0] for u in UPLOADS])
def test_bad_uploads_are_refused_with_a_message(case, data, message):
    with pytest.raises(InvalidInputError, match=message.replace("(", r"\(")):
        load_image_file(data, "upload.png")


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "I;16", "CMYK"])
def test_other_colour_modes_become_rgb(mode):
    if mode == "CMYK":
        buf = io.BytesIO()
        Image.new("CMYK", (40, 30), (0, 50, 100, 0)).save(buf, "JPEG")
        data = buf.getvalue()
    else:
        data = _png((40, 30), mode)
    img = load_image_file(data, "upload")
    assert img.dtype == np.uint8 and img.shape == (30, 30, 3)


@pytest.fixture(scope="module")
def index():
    table = pd.DataFrame({"subject": "subj01", "method": "brainscuba", "voxel": [0, 1, 2],
                          "caption": ["a smiling face", "a plate of food", "the word 'hello' on a sign"],
                          "keywords": None, "hemi": "lh", "vertex": [0, 1, 2], "roi": "FFA-1", "noise_ceiling": 50.0,
                          "sentence_r": 0.1, "r_test": 0.5, "r2_nc": 0.5})
    return CaptionIndex(table)


SEARCHES = [
    ("quotes", "face' OR '1'='1", None),
    ("SQL", "'; DROP TABLE voxel_captions; --", None),
    ("regex metacharacters", ".*+?[(face", None),
    ("emoji", "😀 face", None),
    ("only symbols", "!!! ??? ***", "has no words to look for"),
    ("10,000 characters", "a" * 10_000, "10,000 characters long; type at most 300"),
]


@pytest.mark.parametrize("case,query,message", SEARCHES, ids=[s[0] for s in SEARCHES])
def test_hostile_searches_match_words_or_say_why_not(index, case, query, message):
    if message is None:
        res = index.search(query)
        assert isinstance(res, pd.DataFrame)
        if "face" in query and "OR" not in query:
            assert res.caption.tolist() == ["a smiling face"]
        else:
            assert len(res) <= 3
    else:
        with pytest.raises(InvalidInputError, match=message):
            index.search(query)
    assert len(index.table) == 3


def test_a_script_tag_in_a_link_is_shown_as_text_not_run(fitted_world, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("VOXELSCOPE_WORKSPACE", str(fitted_world[0].path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["subject"] = "<script>alert(1)</script>"
    at.query_params["vertex"] = "lh:99999999999999999999"
    at.switch_page("views/explorer.py")
    at.run()
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert "Unknown subject `<script>alert(1)</script>`" in errors  # inside a code span: shown, not interpreted
    assert "does not exist" in errors
    assert at.selectbox(key="cx_subject").value == "subj01"


@pytest.mark.parametrize("case", ["pickle", "wrong shapes", "missing"])
def test_a_model_folder_with_bad_weights_is_refused_by_file_never_unpickled(case, tmp_path, monkeypatch):
    from backend.models.incontext import InContextEncoder

    folder = tmp_path / "incontext"
    shutil.copytree(ROOT / "assets" / "models" / "incontext", folder)
    weights = folder / "model.safetensors"
    ran = []
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: ran.append(a))  # would show an unpickling attempt
    if case == "pickle":
        weights.write_bytes(pickle.dumps({"P.weight": [1, 2, 3]}))
        message = "is not a safetensors file"
    elif case == "wrong shapes":
        import json

        cfg = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**cfg, "width": 64}))
        message = "does not match"
    else:
        weights.unlink()
        message = "has no model.safetensors"
    with pytest.raises((InvalidInputError, FileNotFoundError), match=message):
        InContextEncoder.from_pretrained(folder)
    assert not ran
