"""The two data sources honour one contract; the synthetic log looks like real viewing data."""
from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support import MOVIELENS_PATH

from course_lib.datasets import GENRES, Dataset, DatasetError, _tie_breaks, load, movielens, synthetic

START, DAYS = pd.Timestamp("2025-01-01", tz="UTC"), 90

EXPECTED_DTYPES = {
    "users": {"user_id": "int64", "age": "Int64", "signup_timestamp": "datetime64[ns, UTC]"},
    "movies": {"movie_id": "int64", "title": "object", "genres": "object", "release_year": "Int64",
               "runtime": "Int64"},
    "watch_events": {"user_id": "int64", "movie_id": "int64", "event_timestamp": "datetime64[ns, UTC]",
                     "rating": "float64", "watch_seconds": "float64"},
}
SORT_KEYS = {"users": ["user_id"], "movies": ["movie_id"],
             "watch_events": ["event_timestamp", "user_id", "movie_id"]}
FLAG_GENRES = ("Action", "Comedy", "Drama", "Horror", "Romance")


@pytest.fixture(scope="module")
def synth() -> Dataset:
    """The notebook-sized synthetic dataset."""
    return synthetic()


@pytest.fixture(scope="module")
def ml() -> Dataset:
    """MovieLens ml-latest-small; a missing copy makes these tests fail, never skip."""
    assert (MOVIELENS_PATH / "ratings.csv").is_file(), (
        f"MovieLens copy not found at {MOVIELENS_PATH}; set MOVIELENS_PATH to an unzipped ml-latest-small folder")
    return movielens(MOVIELENS_PATH)


@pytest.fixture(scope="module", params=["synth", "ml"])
def dataset(request: pytest.FixtureRequest) -> Dataset:
    """Each source in turn."""
    return request.getfixturevalue(request.param)


def csv_rows(name: str) -> list[dict[str, str]]:
    """A MovieLens file read independently of the loader, with the csv module."""
    with open(MOVIELENS_PATH / name, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def genre_sets(movies: pd.DataFrame) -> pd.Series:
    """Each movie's genres as a set, indexed by movie_id."""
    return movies.set_index("movie_id")["genres"].map(lambda text: set(filter(None, text.split("|"))))


# --- the contract, for both sources ----------------------------------------------------------

def test_columns_and_dtypes_match_the_contract(dataset: Dataset) -> None:
    for table, dtypes in EXPECTED_DTYPES.items():
        frame = getattr(dataset, table)
        assert {column: str(dtype) for column, dtype in frame.dtypes.items()} == dtypes, table
    for column in ("title", "genres"):
        assert dataset.movies[column].map(type).eq(str).all(), column


def test_tables_are_sorted_with_fresh_index_and_ids_from_one(dataset: Dataset) -> None:
    for table, keys in SORT_KEYS.items():
        frame = getattr(dataset, table)
        assert frame.equals(frame.sort_values(keys, kind="stable").reset_index(drop=True)), table
        assert isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0, table
    assert dataset.users["user_id"].is_unique and dataset.users["user_id"].min() >= 1
    assert dataset.movies["movie_id"].is_unique and dataset.movies["movie_id"].min() >= 1
    assert dataset.watch_events["user_id"].isin(dataset.users["user_id"]).all()
    assert dataset.watch_events["movie_id"].isin(dataset.movies["movie_id"]).all()


def test_ratings_are_half_stars_between_half_and_five(dataset: Dataset) -> None:
    rated = dataset.watch_events["rating"].dropna()
    assert len(rated) > 0
    assert rated.between(0.5, 5.0).all()
    assert (rated * 2).eq((rated * 2).round()).all()


def test_watch_seconds_are_never_negative(dataset: Dataset) -> None:
    assert (dataset.watch_events["watch_seconds"].dropna() >= 0).all()


def test_events_never_precede_the_users_signup(dataset: Dataset) -> None:
    signup = dataset.watch_events["user_id"].map(dataset.users.set_index("user_id")["signup_timestamp"])
    assert (dataset.watch_events["event_timestamp"] >= signup).all()


def test_a_user_never_watches_the_same_movie_twice_at_one_instant(dataset: Dataset) -> None:
    assert not dataset.watch_events.duplicated(["user_id", "movie_id", "event_timestamp"]).any()


def test_provenance_names_every_column_and_is_honest(dataset: Dataset) -> None:
    columns = {f"{table}.{column}" for table, dtypes in EXPECTED_DTYPES.items() for column in dtypes}
    assert set(dataset.provenance) == columns
    for key, origin in dataset.provenance.items():
        assert re.fullmatch(r"real|synthetic|derived: .+|null: .+", origin), (key, origin)
        table, column = key.split(".")
        values = getattr(dataset, table)[column]
        if origin.startswith("null:"):
            assert values.isna().all(), key
        if origin == "real":
            assert values.notna().all(), key


def test_flag_genres_are_spelled_as_in_the_vocabulary(dataset: Dataset) -> None:
    assert set(FLAG_GENRES) <= set(GENRES)
    used = set().union(*genre_sets(dataset.movies))
    assert set(FLAG_GENRES) <= used


# --- synthetic ---------------------------------------------------------------------------------

def test_synthetic_is_deterministic_per_seed() -> None:
    first, again, other = synthetic(seed=7), synthetic(seed=7), synthetic(seed=8)
    assert first.checksum() == again.checksum()
    assert first.watch_events.equals(again.watch_events)
    assert first.checksum() != other.checksum()


def test_synthetic_honours_requested_sizes_and_window() -> None:
    data = synthetic(seed=3, n_users=50, n_movies=20, n_events=500, start="2024-06-01", days=10)
    assert (len(data.users), len(data.movies), len(data.watch_events)) == (50, 20, 500)
    stamps = data.watch_events["event_timestamp"]
    start = pd.Timestamp("2024-06-01", tz="UTC")
    assert stamps.min() >= start and stamps.max() < start + pd.Timedelta(days=10)


def test_synthetic_rejects_impossible_sizes() -> None:
    with pytest.raises(DatasetError, match="n_events >= 1"):
        synthetic(n_events=0)


def test_synthetic_users_are_plausible(synth: Dataset) -> None:
    assert synth.users["age"].notna().all() and synth.users["age"].between(16, 80).all()
    signup = synth.users["signup_timestamp"]
    assert (signup < START).any() and (signup >= START).any()
    assert (signup < START + pd.Timedelta(days=DAYS)).all()
    first_event = synth.watch_events.groupby("user_id")["event_timestamp"].min()
    assert (first_event > first_event.index.map(synth.users.set_index("user_id")["signup_timestamp"])).all()


def test_synthetic_movies_are_plausible(synth: Dataset) -> None:
    genres = genre_sets(synth.movies)
    assert genres.map(len).between(1, 3).all()
    assert set().union(*genres) <= set(GENRES)
    assert synth.movies["runtime"].between(80, 180).all()
    assert synth.movies["release_year"].between(1920, START.year).all()


def test_synthetic_timestamps_follow_a_daily_weekly_and_growth_pattern(synth: Dataset) -> None:
    stamps = synth.watch_events["event_timestamp"]
    assert stamps.min() >= START and stamps.max() < START + pd.Timedelta(days=DAYS)
    hours = stamps.dt.hour.value_counts()
    assert hours.loc[18:23].sum() > 2 * hours.loc[2:7].sum()
    per_day = stamps.dt.floor("D").value_counts()
    weekend = per_day.index.dayofweek >= 5
    assert per_day[weekend].mean() > per_day[~weekend].mean()
    middle = START + pd.Timedelta(days=DAYS / 2)
    assert (stamps >= middle).sum() > (stamps < middle).sum()


def test_popular_movies_get_most_views(synth: Dataset) -> None:
    views = synth.watch_events["movie_id"].value_counts()
    top_tenth = views.iloc[: len(synth.movies) // 10].sum() / views.sum()
    assert top_tenth > 0.3


def test_about_eighty_percent_of_events_are_rated(synth: Dataset) -> None:
    assert 0.75 < synth.watch_events["rating"].notna().mean() < 0.85


def test_watch_time_fits_the_runtime_and_grows_with_the_rating(synth: Dataset) -> None:
    events = synth.watch_events.merge(synth.movies[["movie_id", "runtime"]], on="movie_id")
    completion = events["watch_seconds"] / (events["runtime"].astype(float) * 60)
    assert events["watch_seconds"].notna().all() and (completion <= 1).all()
    by_rating = completion.groupby(events["rating"]).mean()
    assert by_rating.loc[4.0:].mean() > by_rating.loc[:2.0].mean() + 0.1


def test_users_rate_their_most_watched_genre_higher(synth: Dataset) -> None:
    genres = synth.watch_events["movie_id"].map(genre_sets(synth.movies))
    exploded = pd.DataFrame({"user_id": synth.watch_events["user_id"], "genre": genres}).explode("genre")
    counts = exploded.value_counts(["user_id", "genre"]).rename("n").reset_index()
    favourite = counts.sort_values(["user_id", "n", "genre"], ascending=[True, False, True]) \
        .drop_duplicates("user_id").set_index("user_id")["genre"]
    in_favourite = [fav in names for fav, names in zip(synth.watch_events["user_id"].map(favourite), genres)]
    means = synth.watch_events.assign(fav=in_favourite).dropna(subset=["rating"]) \
        .groupby(["user_id", "fav"])["rating"].mean().unstack().dropna()
    assert len(means) > len(synth.users) / 2
    assert (means[True] - means[False]).mean() > 0.2
    assert (means[True] > means[False]).mean() > 0.6


def test_tie_breaks_separate_only_repeats_of_one_pair_and_second() -> None:
    offsets = _tie_breaks(np.array([1, 1, 1, 2, 1]), np.array([5, 5, 5, 5, 5]), np.array([10, 10, 10, 10, 11]))
    assert offsets.asi8.tolist() == [0, 1, 2, 0, 0]


# --- MovieLens ---------------------------------------------------------------------------------

def test_movielens_row_counts_match_the_csv_files(ml: Dataset) -> None:
    ratings, movies = csv_rows("ratings.csv"), csv_rows("movies.csv")
    assert len(ml.watch_events) == len(ratings)
    assert len(ml.movies) == len(movies)
    assert len(ml.users) == len({row["userId"] for row in ratings})


def test_movielens_timestamps_are_utc_and_signup_is_the_first_rating(ml: Dataset) -> None:
    first = csv_rows("ratings.csv")[0]
    expected = pd.Timestamp(int(first["timestamp"]), unit="s", tz="UTC")
    events = ml.watch_events
    match = events[(events["user_id"] == int(first["userId"])) & (events["movie_id"] == int(first["movieId"]))]
    assert match["event_timestamp"].tolist() == [expected]
    assert str(match["event_timestamp"].dt.tz) == "UTC"
    assert (ml.users.set_index("user_id")["signup_timestamp"]
            == events.groupby("user_id")["event_timestamp"].min()).all()


def test_movielens_release_year_comes_from_the_title(ml: Dataset) -> None:
    year = ml.movies.set_index("movie_id")["release_year"]
    titles = {int(row["movieId"]): row["title"] for row in csv_rows("movies.csv")}
    assert titles[1] == "Toy Story (1995)" and year[1] == 1995
    assert titles[27008].endswith("(1999) ") and year[27008] == 1999
    assert titles[40697] == "Babylon 5" and pd.isna(year[40697])


def test_movielens_genres_keep_their_names_and_drop_the_none_marker(ml: Dataset) -> None:
    raw = {int(row["movieId"]): row["genres"] for row in csv_rows("movies.csv")}
    genres = ml.movies.set_index("movie_id")["genres"]
    assert genres[1] == raw[1] == "Adventure|Animation|Children|Comedy|Fantasy"
    none_listed = [movie for movie, text in raw.items() if text == "(no genres listed)"]
    assert none_listed and (genres[none_listed] == "").all()
    # MovieLens labels IMAX releases in its genre column; the loader passes that label through.
    assert set().union(*genre_sets(ml.movies)) - set(GENRES) == {"IMAX"}


def test_movielens_marks_missing_information_as_null(ml: Dataset) -> None:
    for key in ("users.age", "movies.runtime", "watch_events.watch_seconds"):
        assert ml.provenance[key].startswith("null: "), key
    assert ml.provenance["users.signup_timestamp"].startswith("derived: ")
    assert ml.provenance["watch_events.rating"] == "real"


def test_missing_movielens_folder_says_where_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as caught:
        movielens(tmp_path / "ml-latest-small")
    message = str(caught.value)
    for text in ("ml-latest-small", "https://grouplens.org/datasets/movielens/", "ml-latest-small.zip",
                 "research use only", "not redistributed"):
        assert text in message


def test_missing_movielens_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n1,Example (2000),Drama\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"ratings\.csv is missing.*grouplens\.org"):
        movielens(tmp_path)


def test_wrong_movielens_columns_are_reported(tmp_path: Path) -> None:
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n1,Example (2000),Drama\n", encoding="utf-8")
    (tmp_path / "ratings.csv").write_text("user,movie,stars\n1,1,4.0\n", encoding="utf-8")
    lacks = r"ratings\.csv lacks columns \['userId', 'movieId', 'rating', 'timestamp'\]"
    with pytest.raises(DatasetError, match=lacks):
        movielens(tmp_path)


def test_save_and_load_round_trip(tmp_path):
    """A saved dataset loads back with the same checksum and provenance."""
    original = synthetic(seed=5, n_users=50, n_movies=30, n_events=800)
    loaded = load(original.save(tmp_path / "raw"))
    assert loaded.checksum() == original.checksum()
    assert loaded.provenance == original.provenance and loaded.name == original.name


def test_load_without_saved_dataset_says_how_to_fix(tmp_path):
    """Loading from an empty folder names the command that creates the data."""
    with pytest.raises(DatasetError, match="course data"):
        load(tmp_path)
