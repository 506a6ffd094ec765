"""The procedural stimulus world: deterministic, captioned in category words, with object masks."""
import numpy as np

from backend.datasets.demo.stimuli import CATEGORIES, CATEGORY_WORDS, render_stimulus


def test_same_seed_and_index_give_the_same_image_captions_and_mask():
    a = render_stimulus(3, 17)
    b = render_stimulus(3, 17)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert a[2].captions == b[2].captions
    c = render_stimulus(4, 17)
    assert not np.array_equal(a[0], c[0])


def test_images_are_128px_rgb_with_one_to_three_objects_and_3_to_5_captions():
    for i in range(60):
        img, mask, s = render_stimulus(0, i)
        assert img.shape == (128, 128, 3) and img.dtype == np.uint8
        assert mask.shape == (128, 128)
        assert 1 <= len(s.objects) <= 3
        assert 3 <= len(s.captions) <= 5
        assert len(set(s.captions)) == len(s.captions)


def test_each_mask_label_sits_where_its_object_was_placed():
    checked = 0
    for i in range(200):
        _, mask, s = render_stimulus(1, i)
        for k, o in enumerate(s.objects, start=1):
            if o.area < 0.01 or o.category == "word":
                continue
            ys, xs = np.nonzero(mask == k)
            cx = xs.mean() / 128 * 2 - 1
            cy = 1 - ys.mean() / 128 * 2
            assert abs(cx - o.x) < o.size + 0.1 and abs(cy - o.y) < o.size + 0.1, (i, o)
            checked += 1
    assert checked > 150


def test_visible_area_matches_mask_and_occlusion_is_accounted():
    for i in range(50):
        _, mask, s = render_stimulus(2, i)
        for k, o in enumerate(s.objects, start=1):
            assert abs(o.area - (mask == k).mean()) < 1e-9


def test_every_category_occurs_and_its_category_words_appear_in_captions():
    """Each category is named in its images' captions, and every phrase the grammar has for a whole category
    (what category prompts say: "a face", "food", "text", "a word") is used in some caption of an image showing
    it: a phrase no caption uses is one the embedder and the generator never learn (words were once named only
    by their text, so "text" was not even in the embedder's vocabulary)."""
    import re

    seen = {c: 0 for c in CATEGORIES}
    named = {c: 0 for c in CATEGORIES}
    used = {c: set() for c in CATEGORIES}
    for i in range(600):
        _, _, s = render_stimulus(0, i)
        text = " ".join(s.captions)
        for c in {o.category for o in s.objects}:
            seen[c] += 1
            words = CATEGORY_WORDS[c] + (('the word "',) if c == "word" else ())
            named[c] += any(w in text for w in words)
            used[c] |= {p for p in CATEGORY_WORDS[c] if re.search(rf"\b{re.escape(p)}\b", text)}
    for c in CATEGORIES:
        assert seen[c] > 50, c
        assert named[c] / seen[c] > 0.4, (c, named[c], seen[c])
        assert used[c] == set(CATEGORY_WORDS[c]), (c, set(CATEGORY_WORDS[c]) - used[c])


def test_captions_describe_faces_as_faces_and_food_by_name():
    faces = food = 0
    for i in range(300):
        _, _, s = render_stimulus(5, i)
        cats = {o.category for o in s.objects}
        if cats == {"face"}:
            assert all("face" in c for c in s.captions), s.captions
            faces += 1
        if cats == {"food"}:
            kinds = {o.kind for o in s.objects}
            names = {k.replace(" fruit", "") for k in kinds} | {"food"}
            assert all(any(n in c for n in names) for c in s.captions), s.captions
            food += 1
    assert faces > 5 and food > 5
