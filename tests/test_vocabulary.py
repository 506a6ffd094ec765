"""The embedder learns the words a changed caption grammar uses, and nothing it already represents moves."""
import json

import numpy as np
import pytest
import torch

from backend.models.embedder import DemoClip, DemoClipModel
from backend.models.tokenizer import WordTokenizer

OLD = ["a red apple on a grey background", "a smiling face in a room", "the word \"stop\" in a field",
       "a person in a blue shirt", "a house outdoors in a park"]


def _tiny_clip(folder):
    torch.manual_seed(0)
    tok = WordTokenizer.train(OLD)
    DemoClip(DemoClipModel(vocab=len(tok), dim=32, width=8, text_layers=1, heads=2), tok,
             "test/tiny-clip").save_pretrained(folder)
    return DemoClip.from_pretrained(folder)


def _world(n=64):
    """Bright images whose captions call their object "text", dark ones captioned in the old words."""
    rng = np.random.default_rng(0)
    bright = np.arange(n) % 2 == 0
    images = np.where(bright[:, None, None, None], rng.integers(150, 255, (n, 32, 32, 3)),
                      rng.integers(0, 100, (n, 32, 32, 3))).astype(np.uint8)
    captions = [["text on a grey background", "written text in a room"] if b else [OLD[i % 5], OLD[(i + 1) % 5]]
                for i, b in enumerate(bright)]
    return {"images": images, "captions": captions}, bright


def test_the_embedder_learns_new_caption_words_and_nothing_it_knew_moves(tmp_path):
    from backend.models.demo.vocabulary import extend_embedder_vocabulary, missing_words

    before = _tiny_clip(tmp_path / "emb")
    data, bright = _world()
    assert missing_words(before.tokenizer, data["captions"]) == {"text": 64, "written": 32}
    assert before.unknown_words("written text") == ["written", "text"]
    rep = extend_embedder_vocabulary(tmp_path / "emb", data, steps=100, batch=16, lr=3e-2, log=lambda m: None)
    after = DemoClip.from_pretrained(tmp_path / "emb")
    assert rep["new_words"] == ["text", "written"] and after.model_id == "test/tiny-clip+words"
    assert after.unknown_words("written text") == []
    assert np.array_equal(after.image_features(data["images"]), before.image_features(data["images"]))
    assert np.array_equal(after.text_features(OLD), before.text_features(OLD))
    # the new words now point at the images captioned with them (a random tiny image tower: small margins)
    for prompt in ("text", "written text"):
        sim = after.image_features(data["images"]) @ after.text_features([prompt])[0]
        assert sim[bright].mean() > sim[~bright].mean() + 0.03, prompt
    cfg = json.loads((tmp_path / "emb" / "config.json").read_text())
    assert cfg["vocabulary_extensions"][0]["from_model_id"] == "test/tiny-clip"
    assert not list(tmp_path.glob("emb.*")) and not (tmp_path / "emb" / "vocab_state.pt").exists()
    assert extend_embedder_vocabulary(tmp_path / "emb", data, log=lambda m: None) == {"new_words": {}}


def test_a_killed_vocabulary_extension_resumes_to_the_same_embedder(tmp_path):
    from backend.models.demo.vocabulary import extend_embedder_vocabulary

    data, _ = _world()
    for name in ("a", "b"):
        _tiny_clip(tmp_path / name)
    sizes = dict(steps=40, batch=16, checkpoint_every=10, log=lambda m: None)
    extend_embedder_vocabulary(tmp_path / "a", data, **sizes)

    def killer(stage, done, total):
        if done == 25:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extend_embedder_vocabulary(tmp_path / "b", data, progress=killer, **sizes)
    assert DemoClip.from_pretrained(tmp_path / "b").unknown_words("text") == ["text"]  # the folder is untouched
    extend_embedder_vocabulary(tmp_path / "b", data, **sizes)
    a, b = (DemoClip.from_pretrained(tmp_path / n) for n in ("a", "b"))
    assert np.array_equal(a.text_features(["text", "written text"]), b.text_features(["text", "written text"]))

