"""Voxel-wise ridge encoders: the same answer as scikit-learn, and ground truth recovered on the demo world."""
import numpy as np
import pytest
from sklearn.linear_model import RidgeCV

from backend.encoders.ridge import DEFAULT_ALPHAS, fit_ridge_cv, pearson_columns, r2_columns


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 30)).astype(np.float32)
    W = rng.normal(size=(30, 60)) * rng.uniform(0, 1, 60)
    Y = (X @ W + rng.normal(size=(400, 60)) * rng.uniform(0.5, 8, 60)).astype(np.float32)
    Xt = rng.normal(size=(100, 30)).astype(np.float32)
    return X, Y, Xt


def test_exact_loo_ridge_matches_scikit_learn_alphas_and_predictions(problem):
    X, Y, Xt = problem
    sk = RidgeCV(alphas=DEFAULT_ALPHAS, alpha_per_target=True).fit(X.astype(np.float64), Y.astype(np.float64))
    ours = fit_ridge_cv(X, Y, cv="loo", chunk=17)  # odd chunking must not matter
    assert np.allclose(ours.alpha, sk.alpha_, rtol=1e-4)
    assert np.allclose(ours.predict(Xt), sk.predict(Xt), atol=1e-3 * np.abs(sk.predict(Xt)).max())


def test_gcv_ridge_predicts_as_well_as_scikit_learn(problem):
    X, Y, Xt = problem
    sk = RidgeCV(alphas=DEFAULT_ALPHAS, alpha_per_target=True).fit(X, Y)
    ours = fit_ridge_cv(X, Y, cv="gcv")
    assert np.mean(np.isclose(ours.alpha, sk.alpha_)) > 0.8
    assert np.allclose(ours.predict(Xt), sk.predict(Xt), atol=0.05 * np.abs(sk.predict(Xt)).max())


def test_noisier_targets_get_stronger_regularisation(problem):
    X, Y, _ = problem
    rng = np.random.default_rng(2)
    clean = X @ rng.normal(size=(30, 1)).astype(np.float32)
    Y2 = np.hstack([clean + 0.1 * rng.normal(size=clean.shape), clean + 20 * rng.normal(size=clean.shape)])
    fit = fit_ridge_cv(X, Y2.astype(np.float32))
    assert fit.alpha[1] > 10 * fit.alpha[0]


def test_bad_input_is_refused_with_its_shape(problem):
    X, Y, _ = problem
    with pytest.raises(ValueError, match=r"X \(400, 30\) and Y \(399, 60\)"):
        fit_ridge_cv(X, Y[:-1])
    Yn = Y.copy()
    Yn[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        fit_ridge_cv(X, Yn)
    with pytest.raises(ValueError, match="cv must be"):
        fit_ridge_cv(X, Y, cv="kfold")


def test_accuracy_helpers_are_the_textbook_formulas():
    y = np.array([[1.0, 2.0], [2.0, 4.0], [3.0, 7.0]])
    p = np.array([[1.0, 7.0], [2.0, 4.0], [3.0, 2.0]])
    assert np.allclose(pearson_columns(y, p), [1.0, np.corrcoef(y[:, 1], p[:, 1])[0, 1]])
    assert np.allclose(r2_columns(y, p)[0], 1.0)
    assert np.allclose(r2_columns(y, p)[1], 1 - ((y[:, 1] - p[:, 1]) ** 2).sum() / ((y[:, 1] - y[:, 1].mean()) ** 2).sum())


# ---------------------------------------------------------------------------------------- on the demo world
def test_features_are_computed_once_and_reused(fitted_world):
    from backend.encoders.features import stimulus_features
    from backend.models import model_config

    ws, emb, feats, key, _ = fitted_world
    runs_before = len(ws.query("SELECT * FROM runs WHERE method = 'features'"))
    again, key2 = stimulus_features(ws, emb, model_config()["embedder"]["path"])
    assert key2 == key and np.array_equal(np.asarray(again), feats)
    assert len(ws.query("SELECT * FROM runs WHERE method = 'features'")) == runs_before == 1
    assert feats.shape == (2300, emb.dim) and np.allclose(np.linalg.norm(feats, axis=1), 1, atol=1e-4)


def test_encoder_results_are_stored_with_their_run(fitted_world):
    ws, emb, _, key, _ = fitted_world
    enc = ws.query("SELECT * FROM voxel_encoding WHERE subject = 'subj01'")
    n_vox = ws.query("SELECT count(*) AS n FROM voxels WHERE subject = 'subj01'").n[0]
    assert len(enc) == n_vox and enc.r_test.notna().all()
    run = ws.query("SELECT r.* FROM runs r JOIN encoders e USING (run_id) WHERE e.subject = 'subj01'").iloc[0]
    assert run.method == "encoder-ridge" and emb.model_id in run.model_ids


def test_category_rois_are_predicted_well_and_better_than_the_rest(fitted_world):
    ws, *_ = fitted_world
    df = ws.query("SELECT v.roi, e.r_test, e.r2_nc FROM voxel_encoding e JOIN voxels v USING (subject, voxel) "
                  "WHERE subject = 'subj01'")
    cat = df[df.roi.isin(["FFA-1", "FFA-2", "OFA", "PPA", "EBA", "VWFA-1", "ventral-food"])]
    rest = df[df.roi.isna()]
    assert cat.r_test.median() > 0.4
    assert cat.r_test.median() > rest.r_test.median() + 0.2


def test_encoder_weights_recover_the_true_preferred_category(fitted_world):
    """The text embedding of each category, dotted with a voxel's weights, peaks at the voxel's true category."""
    from backend.datasets.demo.stimuli import CATEGORIES
    from backend.encoders import encoder_weights
    from backend.models.demo.evaluate import category_text_features

    ws, emb, _, key, _ = fitted_world
    text = category_text_features(emb)
    rates = []
    for subject in ("subj01", "subj02"):
        W, _, _ = encoder_weights(ws, subject, key)
        truth = ws.query("SELECT voxel, category, ncsnr_true FROM voxel_truth WHERE subject = ? AND category <> ''",
                         [subject])
        pred = np.array(CATEGORIES)[(W[truth.voxel.to_numpy()] @ text.T).argmax(1)]
        rates.append(np.mean(pred == truth.category.to_numpy()))
    assert min(rates) > 0.85, rates
