"""The course's raw data: a seeded synthetic streaming log, or the real MovieLens ratings.

Both sources return the same `Dataset` (three tables with identical columns and dtypes)
plus a `provenance` map saying, for every column, whether its values are real, derived,
missing or synthetic. Nothing downstream needs to know which source it got.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from course_lib.errors import CourseError
from course_lib.messages import say

# Genre vocabulary with rough relative frequencies (MovieLens-like): drama and comedy
# dominate, film-noir is rare. Spelling follows MovieLens, so both sources agree.
GENRE_WEIGHTS: dict[str, float] = {
    "Action": 18, "Adventure": 13, "Animation": 6, "Children": 7, "Comedy": 38, "Crime": 12,
    "Documentary": 4, "Drama": 44, "Fantasy": 8, "Film-Noir": 1, "Horror": 10, "Musical": 3,
    "Mystery": 6, "Romance": 16, "Sci-Fi": 10, "Thriller": 19, "War": 4, "Western": 2,
}
GENRES: tuple[str, ...] = tuple(GENRE_WEIGHTS)

SIZES: dict[str, dict[str, int]] = {
    "small": {"n_users": 1_000, "n_movies": 400, "n_events": 40_000},
    "full": {"n_users": 50_000, "n_movies": 10_000, "n_events": 1_000_000},
}

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": ("user_id", "age", "signup_timestamp"),
    "movies": ("movie_id", "title", "genres", "release_year", "runtime"),
    "watch_events": ("user_id", "movie_id", "event_timestamp", "rating", "watch_seconds"),
}

# MovieLens genre labels whose spelling differs from GENRES; None means "no genre".
MOVIELENS_GENRE_ALIASES: dict[str, str | None] = {"(no genres listed)": None, "Children's": "Children"}
# The two ml-latest-small files the loader reads: column -> dtype.
MOVIELENS_COLUMNS: dict[str, dict[str, str]] = {
    "ratings.csv": {"userId": "int64", "movieId": "int64", "rating": "float64", "timestamp": "int64"},
    "movies.csv": {"movieId": "int64", "title": "str", "genres": "str"},
}

_SMALL = SIZES["small"]
_TITLE_WORDS = (
    ("Silent", "Crimson", "Last", "Broken", "Golden", "Hidden", "Midnight", "Lost", "Electric",
     "Frozen", "Wild", "Secret", "Burning", "Distant", "Hollow", "Iron", "Paper", "Quiet",
     "Restless", "Savage", "Velvet", "Wandering", "Bright", "Cold"),
    ("Harbor", "Empire", "Garden", "Signal", "Horizon", "Letter", "River", "Kingdom", "Machine",
     "Summer", "Witness", "Orchard", "Frontier", "Mirror", "Station", "Promise", "Storm",
     "Island", "Circus", "Lantern", "Voyage", "Shadow", "Engine", "Carnival"),
)


class DatasetError(CourseError):
    """The data cannot be loaded or generated; the message says what is wrong and how to fix it."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """Users, movies and watch events of one source, with each column's provenance."""

    name: str
    users: pd.DataFrame
    movies: pd.DataFrame
    watch_events: pd.DataFrame
    provenance: dict[str, str]

    def checksum(self) -> str:
        """SHA-256 over the row hashes of users, movies and watch_events, in that order."""
        digest = hashlib.sha256()
        for table in (self.users, self.movies, self.watch_events):
            digest.update(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes())
        return digest.hexdigest()

    def save(self, folder: str | Path) -> Path:
        """Write the three tables and the provenance to a folder (temp files, then rename)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = json.dumps({"name": self.name, "provenance": self.provenance}, indent=1)
        files = {f"{t}.parquet": getattr(self, t) for t in ("users", "movies", "watch_events")}
        staged = []
        for filename, table in files.items():
            tmp = folder / f".{filename}.tmp"
            table.to_parquet(tmp, index=False)
            staged.append((tmp, folder / filename))
        (folder / ".dataset.json.tmp").write_text(meta)
        staged.append((folder / ".dataset.json.tmp", folder / "dataset.json"))
        for tmp, target in staged:
            tmp.replace(target)
        return folder


def load(folder: str | Path) -> Dataset:
    """Read a dataset written by `Dataset.save`."""
    folder = Path(folder)
    if not (folder / "dataset.json").is_file():
        raise DatasetError(say("datasets.no_saved_dataset", folder=folder))
    meta = json.loads((folder / "dataset.json").read_text())
    tables = {t: pd.read_parquet(folder / f"{t}.parquet") for t in ("users", "movies", "watch_events")}
    return Dataset(meta["name"], provenance=meta["provenance"], **tables)


def _utc(origin: pd.Timestamp, seconds: np.ndarray) -> pd.Series:
    """Whole seconds after `origin` as a datetime64[ns, UTC] series."""
    return pd.Series(pd.to_datetime(origin.value + seconds * 1_000_000_000, unit="ns", utc=True))


def _draw(weights: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each entry of `rows`, draw a column index with probability proportional to `weights[row]`."""
    cumulative = np.cumsum(weights, axis=1)
    cumulative /= cumulative[:, -1:]
    cumulative[:, -1] = 1.0
    flat = (cumulative + np.arange(len(weights))[:, None]).ravel()
    position = np.searchsorted(flat, rows + rng.random(len(rows)), side="right")
    return position - rows * weights.shape[1]


def _traffic_cdf(start: pd.Timestamp, days: int) -> np.ndarray:
    """Cumulative share of traffic at each hour edge: growth, evening peak, weekend boost."""
    hours = start + pd.to_timedelta(np.arange(days * 24), unit="h")
    hour, weekend = hours.hour.to_numpy(), hours.dayofweek.to_numpy() >= 5
    evening = np.exp(-(((hour - 20.5) / 3.0) ** 2)) + 0.3 * np.exp(-(((hour - 13) / 3.0) ** 2))
    growth = 1.0 + 0.6 * np.arange(len(hours)) / len(hours)
    weight = growth * (0.15 + evening) * np.where(weekend, 1.35, 1.0)
    return np.concatenate([[0.0], np.cumsum(weight) / weight.sum()])


def _synthetic_users(rng: np.random.Generator, n_users: int, origin: pd.Timestamp,
                     days: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Users, their genre taste vectors and their signups as seconds after `origin`."""
    genre_share = np.array(list(GENRE_WEIGHTS.values())) / sum(GENRE_WEIGHTS.values())
    taste = rng.dirichlet(0.1 + 2.0 * genre_share, size=n_users)
    age = np.clip(16 + np.floor(rng.lognormal(np.log(16), 0.7, n_users)), 16, 80).astype(np.int64)
    joins_during_window = rng.random(n_users) < 0.25
    before = -rng.integers(1, 2 * 365 * 86_400, n_users)
    during = rng.integers(0, (days - 1) * 86_400, n_users)
    signup = np.where(joins_during_window, during, before)
    users = pd.DataFrame({"user_id": np.arange(1, n_users + 1, dtype=np.int64),
                          "age": pd.array(age, dtype="Int64"), "signup_timestamp": _utc(origin, signup)})
    return users, taste, signup


def _titles(rng: np.random.Generator, n_movies: int) -> list[str]:
    """Made-up two-word titles; a repeated title becomes a numbered sequel."""
    adjectives, nouns = (np.array(words)[rng.integers(0, len(words), n_movies)] for words in _TITLE_WORDS)
    base = pd.Series([f"The {a} {n}" for a, n in zip(adjectives, nouns)])
    sequel = base.groupby(base).cumcount() + 1
    return [title if part == 1 else f"{title} {part}" for title, part in zip(base, sequel)]


def _synthetic_movies(rng: np.random.Generator, n_movies: int, last_year: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Movies with 1-3 genres, TMDB-like runtime and release year; also the genre membership matrix."""
    genre_count = rng.choice([1, 2, 3], size=n_movies, p=[0.45, 0.35, 0.2])
    keys = np.log(list(GENRE_WEIGHTS.values())) + rng.gumbel(size=(n_movies, len(GENRES)))
    rank = np.argsort(np.argsort(-keys, axis=1), axis=1)
    member = rank < genre_count[:, None]
    names = np.array(GENRES)
    runtime = np.clip(np.round(rng.lognormal(np.log(105), 0.17, n_movies)), 80, 180).astype(np.int64)
    release_year = np.maximum(last_year - np.floor(rng.exponential(12, n_movies)), 1920).astype(np.int64)
    movies = pd.DataFrame({
        "movie_id": np.arange(1, n_movies + 1, dtype=np.int64),
        "title": pd.Series(_titles(rng, n_movies), dtype=object),
        "genres": pd.Series(["|".join(names[row]) for row in member], dtype=object),
        "release_year": pd.array(release_year, dtype="Int64"),
        "runtime": pd.array(runtime, dtype="Int64"),
    })
    return movies, member


def _event_seconds(rng: np.random.Generator, earliest: np.ndarray, cdf: np.ndarray) -> np.ndarray:
    """Whole seconds into the window, drawn from the traffic curve but never before `earliest`."""
    edges = np.arange(len(cdf)) * 3600.0
    floor_share = np.interp(earliest, edges, cdf)
    share = floor_share + (1.0 - floor_share) * rng.random(len(earliest))
    seconds = np.floor(np.interp(share, cdf, edges)).astype(np.int64)
    return np.clip(seconds, earliest, int(edges[-1]) - 1)


def _liking(taste: np.ndarray, member: np.ndarray, user: np.ndarray, movie: np.ndarray) -> np.ndarray:
    """Per event, the user's mean taste over the movie's genres relative to their favourite (0..1)."""
    top = np.argsort(~member, axis=1, kind="stable")[:, :3]
    counted = member[np.arange(len(member))[:, None], top]
    total = sum(taste[user, top[movie, k]] * counted[movie, k] for k in range(top.shape[1]))
    return total / counted.sum(axis=1)[movie] / taste.max(axis=1)[user]


def _tie_breaks(user: np.ndarray, movie: np.ndarray, seconds: np.ndarray) -> pd.TimedeltaIndex:
    """0 ns per event, or 1, 2, ... ns for repeats of one (user, movie, second), so every rewatch has its own time."""
    order = np.lexsort((seconds, movie, user))
    keys = np.stack([user[order], movie[order], seconds[order]])
    repeat = np.concatenate([[False], (keys[:, 1:] == keys[:, :-1]).all(axis=0)])
    run_start = np.maximum.accumulate(np.where(repeat, 0, np.arange(len(order))))
    offset = np.empty(len(order), dtype=np.int64)
    offset[order] = np.arange(len(order)) - run_start
    return pd.to_timedelta(offset, unit="ns")


def _sorted_events(events: pd.DataFrame) -> pd.DataFrame:
    """Events ordered by (event_timestamp, user_id, movie_id) with a fresh index."""
    return events.sort_values(["event_timestamp", "user_id", "movie_id"], kind="stable").reset_index(drop=True)


def _watch_choices(rng: np.random.Generator, taste: np.ndarray, member: np.ndarray,
                   user_weight: np.ndarray, n_events: int) -> tuple[np.ndarray, np.ndarray]:
    """Who watches what (0-based indexes): active users, their genres, popular movies in them."""
    popularity = 1.0 / rng.permutation(np.arange(1, len(member) + 1)) ** 0.9
    user = _draw(user_weight[None, :], np.zeros(n_events, dtype=np.int64), rng)
    # Most views follow the user's taste (a genre, then a popular movie in it); 20% browse the charts.
    genre = _draw(np.hstack([0.8 * taste, np.full((len(taste), 1), 0.2)]), user, rng)
    in_genre = np.vstack([member.T, np.ones((1, len(member)), dtype=bool)]) * popularity
    in_genre[~in_genre.any(axis=1)] = popularity
    return user, _draw(in_genre, genre, rng)


def _reactions(rng: np.random.Generator, liking: np.ndarray, quality: np.ndarray,
               user_bias: np.ndarray, runtime: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per event, the rating (NaN for the ~20% unrated) and seconds watched; both rise with liking."""
    n_events = len(liking)
    rating = np.round(2 * (2.8 + 1.8 * liking + quality + user_bias + rng.normal(0.0, 0.6, n_events))) / 2
    rating = np.clip(rating, 0.5, 5.0)
    rating[rng.random(n_events) >= 0.8] = np.nan
    completion_mean = np.clip(0.25 + 0.6 * liking + 0.3 * quality, 0.05, 0.95)
    completion = rng.beta(6 * completion_mean, 6 * (1 - completion_mean))
    return rating, np.round(runtime * 60 * completion)


def synthetic(seed: int = 42, n_users: int = _SMALL["n_users"], n_movies: int = _SMALL["n_movies"],
              n_events: int = _SMALL["n_events"], start: str = "2025-01-01", days: int = 90) -> Dataset:
    """A seeded, deterministic streaming-service log shaped like real viewing data."""
    if min(n_users, n_movies, n_events) < 1 or days < 2:
        raise DatasetError(say("datasets.synthetic_sizes", n_users=n_users, n_movies=n_movies, n_events=n_events,
                               days=days))
    origin = pd.Timestamp(start)
    origin = origin.tz_localize("UTC") if origin.tz is None else origin.tz_convert("UTC")
    rng = np.random.default_rng(seed)
    users, taste, signup = _synthetic_users(rng, n_users, origin, days)
    movies, member = _synthetic_movies(rng, n_movies, origin.year)
    cdf = _traffic_cdf(origin, days)
    earliest = np.maximum(signup + 1, 0)
    activity = rng.lognormal(0.0, 0.8, n_users) * (1.0 - np.interp(earliest, np.arange(len(cdf)) * 3600.0, cdf))
    user, movie = _watch_choices(rng, taste, member, activity, n_events)
    quality, user_bias = rng.normal(0.0, 0.45, n_movies), rng.normal(0.0, 0.35, n_users)
    rating, watch_seconds = _reactions(rng, _liking(taste, member, user, movie), quality[movie], user_bias[user],
                                       movies["runtime"].to_numpy(dtype=np.float64)[movie])
    seconds = _event_seconds(rng, earliest[user], cdf)
    timestamp = _utc(origin, seconds) + _tie_breaks(user, movie, seconds)
    events = pd.DataFrame({"user_id": user.astype(np.int64) + 1, "movie_id": movie.astype(np.int64) + 1,
                           "event_timestamp": timestamp, "rating": rating, "watch_seconds": watch_seconds})
    provenance = {f"{table}.{column}": "synthetic" for table, columns in TABLE_COLUMNS.items() for column in columns}
    return Dataset("synthetic", users, movies, _sorted_events(events), provenance)


def _read_movielens_csv(folder: Path, name: str) -> pd.DataFrame:
    """One MovieLens CSV with its expected columns, or a DatasetError saying what is wrong."""
    path, columns = folder / name, MOVIELENS_COLUMNS[name]
    if not path.is_file():
        raise DatasetError(say("datasets.file_missing", path=path, source=say("datasets.movielens_source"),
                               folder=folder))
    layout = say("datasets.movielens_layout", columns=",".join(columns), source=say("datasets.movielens_source"))
    try:
        table = pd.read_csv(path, dtype=columns, keep_default_na=False)
    except ValueError as error:
        raise DatasetError(say("datasets.unparsable", path=path, error=error, layout=layout)) from error
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise DatasetError(say("datasets.columns_missing", path=path, missing=missing, layout=layout))
    return table


def _movielens_genres(raw: str) -> str:
    """MovieLens genres in GENRES spelling, pipe-separated; '' when none are listed."""
    names = (MOVIELENS_GENRE_ALIASES.get(name.strip(), name.strip()) for name in raw.split("|"))
    return "|".join(name for name in names if name)


def movielens(path: str | Path) -> Dataset:
    """Load the MovieLens ml-latest-small folder (ratings.csv, movies.csv) as a Dataset."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DatasetError(say("datasets.no_folder", folder=folder, source=say("datasets.movielens_source")))
    ratings, raw_movies = _read_movielens_csv(folder, "ratings.csv"), _read_movielens_csv(folder, "movies.csv")
    unknown = np.setdiff1d(ratings["movieId"].unique(), raw_movies["movieId"].to_numpy())
    if len(unknown):
        raise DatasetError(say("datasets.unknown_movies", folder=folder, count=len(unknown),
                               examples=unknown[:3].tolist()))

    events = pd.DataFrame({
        "user_id": ratings["userId"], "movie_id": ratings["movieId"],
        "event_timestamp": pd.to_datetime(ratings["timestamp"], unit="s", utc=True).astype("datetime64[ns, UTC]"),
        "rating": ratings["rating"], "watch_seconds": np.full(len(ratings), np.nan),
    })
    users = (events.groupby("user_id", as_index=False)["event_timestamp"].min()
             .rename(columns={"event_timestamp": "signup_timestamp"}))
    users.insert(1, "age", pd.array([pd.NA] * len(users), dtype="Int64"))
    year = raw_movies["title"].str.extract(r"\((\d{4})\)\s*$", expand=False)
    movies = pd.DataFrame({
        "movie_id": raw_movies["movieId"], "title": raw_movies["title"].astype(object),
        "genres": raw_movies["genres"].map(_movielens_genres).astype(object),
        "release_year": pd.to_numeric(year).astype("Int64"),
        "runtime": pd.array([pd.NA] * len(raw_movies), dtype="Int64"),
    }).sort_values("movie_id", kind="stable").reset_index(drop=True)
    provenance = {
        "users.user_id": "real",
        "users.age": "null: MovieLens publishes no demographic data",
        "users.signup_timestamp": "derived: the user's first rating time (MovieLens has no signup dates)",
        "movies.movie_id": "real",
        "movies.title": "real",
        "movies.genres": "derived: movies.csv genres, '(no genres listed)' written as ''",
        "movies.release_year": "derived: parsed from the '(YYYY)' suffix of the title; null when absent",
        "movies.runtime": "null: MovieLens has no runtimes",
        "watch_events.user_id": "real",
        "watch_events.movie_id": "real",
        "watch_events.event_timestamp": "derived: the time the rating was given (MovieLens logs ratings, not views)",
        "watch_events.rating": "real",
        "watch_events.watch_seconds": "null: MovieLens has no viewing durations",
    }
    return Dataset("movielens", users.sort_values("user_id").reset_index(drop=True), movies,
                   _sorted_events(events), provenance)
