"""Compiled scoring: the TL2cgen library scores exactly as scikit-learn's `predict_proba`.

The reference is scikit-learn itself on the held-out part of a real training frame (the
synthetic log through the local feature store), never the code under test.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from course_lib import ranker, scoring

TOP_K = 10


@pytest.fixture(scope="module")
def model(ranker_frame: pd.DataFrame) -> ranker.Ranker:
    """The course ranker trained on the synthetic log, with its trees compiled."""
    fitted = ranker.train(ranker_frame)
    fitted.compiled = scoring.compile_model(fitted.model)
    assert fitted.compiled is not None, "these tests need a C compiler (gcc or clang), as `course train` does"
    return fitted


@pytest.fixture(scope="module")
def held_out(model: ranker.Ranker, ranker_frame: pd.DataFrame) -> pd.DataFrame:
    """The held-out rows the model's metrics were computed on."""
    rows = ranker_frame[ranker_frame["event_timestamp"] >= model.trained_until]
    assert len(rows) == model.metrics["rows"] > 1000
    return rows


def reference(model: ranker.Ranker, rows: pd.DataFrame) -> np.ndarray:
    """scikit-learn's P(label = 1), straight from its estimator."""
    return model.model.predict_proba(ranker.design_matrix(rows)[model.features])[:, 1]


def top_k(movie_ids: np.ndarray, scores: np.ndarray) -> list[int]:
    """The served order: highest score first, ties by the smaller movie_id."""
    return movie_ids[np.lexsort((movie_ids, -scores))][:TOP_K].tolist()


def test_compiled_scores_equal_scikit_learn_on_the_held_out_set(model, held_out, tmp_path) -> None:
    expected = reference(model, held_out)
    inputs = ranker.design_matrix(held_out)[model.features].to_numpy()
    got = model.scorer(tmp_path / "ranker.joblib")(inputs)
    assert model.runtime.startswith("tl2cgen")
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    # Stronger than the bar: the sum runs in scikit-learn's order, so the bits are the same.
    assert np.array_equal(got, expected), f"{np.sum(got != expected)} scores differ in their last bits"


def test_top_k_order_is_identical_for_every_user_and_for_candidate_batches(model, held_out, tmp_path) -> None:
    score = model.scorer(tmp_path / "ranker.joblib")
    expected = reference(model, held_out)
    inputs = ranker.design_matrix(held_out)[model.features].to_numpy()
    got = score(inputs)
    movies = held_out["movie_id"].to_numpy()
    users = held_out.groupby("user_id").indices
    assert len(users) > 100
    for rows in users.values():
        assert top_k(movies[rows], got[rows]) == top_k(movies[rows], expected[rows])
    # Request-shaped batches: 100 candidates scored in one call, as the API does.
    for start in range(0, len(held_out) - 100, 100):
        batch = slice(start, start + 100)
        assert top_k(movies[batch], score(inputs[batch])) == top_k(movies[batch], expected[batch])


def test_the_exactness_check_can_fail(model, held_out, tmp_path) -> None:
    """Treelite's own import adds the baseline after the trees: close, but not the same bits,
    which is why `scoring` puts it first. (If Treelite ever changes that order, this test says so.)"""
    import tl2cgen
    import treelite
    from scipy.special import expit

    inputs = ranker.design_matrix(held_out)[model.features].to_numpy()
    library = tmp_path / "naive-ranker.so"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TL2cgen's bundled Treelite notes the model came from a newer Treelite
        tl2cgen.export_lib(treelite.sklearn.import_model(model.model), toolchain=scoring.c_compiler(),
                           libpath=library, params={}, nthread=1)
    margins = tl2cgen.Predictor(library, nthread=1).predict(tl2cgen.DMatrix(inputs, dtype="float64"),
                                                            pred_margin=True)
    got = expit(margins.reshape(-1))
    expected = reference(model, held_out)
    assert np.abs(got - expected).max() < 1e-6 and not np.array_equal(got, expected)


def test_the_compiled_trees_travel_in_the_model_file(model, ranker_stores, tmp_path) -> None:
    """Saved and loaded, the model carries its library; a damaged copy on disk is rewritten from it."""
    profile, _ = ranker_stores("local")
    ranker.save(model, profile)
    loaded = ranker.load(profile)
    assert loaded.compiled == model.compiled and loaded.runtime == model.runtime
    inputs = np.random.default_rng(0).uniform(0, 5, (50, len(model.features)))
    inputs[::3, 2] = np.nan
    first = loaded.scorer(profile.model_path)(inputs)
    (library,) = scoring.library_folder(profile.model_path).glob("ranker-*.so")
    library.write_bytes(b"not a library")
    np.testing.assert_array_equal(loaded.scorer(profile.model_path)(inputs), first)
    assert library.read_bytes() == model.compiled.library


def test_without_a_c_compiler_the_ranker_scores_with_scikit_learn(model, held_out, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("CC", "no-such-compiler")
    assert scoring.c_compiler() is None and scoring.compile_model(model.model) is None
    fallback = ranker.Ranker(model=model.model, features=model.features, trained_until=model.trained_until,
                             metrics=model.metrics)
    assert fallback.runtime == scoring.SKLEARN_RUNTIME
    inputs = ranker.design_matrix(held_out)[model.features].to_numpy()
    np.testing.assert_array_equal(fallback.scorer(tmp_path / "ranker.joblib")(inputs), reference(model, held_out))


def test_a_failing_compiler_is_a_clear_error(model, monkeypatch) -> None:
    monkeypatch.setenv("CC", "false")  # exists, always fails
    with pytest.raises(scoring.ScoringError, match="compiling the ranker with false failed"):
        scoring.compile_model(model.model)
