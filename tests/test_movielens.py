"""deepgm.datasets.load_movielens: the three MovieLens rating formats, ids, and bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepgm.datasets import load_movielens

SHARED = Path("/work/shared/data/movielens-small")

# (user, item, rating): users 7 and 3, items 50, 10 and 20; ids deliberately not contiguous or sorted.
RATINGS = [(7, 50, 4.5), (3, 10, 1.0), (7, 10, 3.0), (3, 20, 5.0), (7, 20, 0.5)]


def write(folder: Path, name: str) -> Path:
    lines = {
        "ratings.csv": ["userId,movieId,rating,timestamp"] + [f"{u},{i},{r},{1000 + n}" for n, (u, i, r) in enumerate(RATINGS)],
        "ratings.dat": [f"{u}::{i}::{int(r * 2)}::{1000 + n}" for n, (u, i, r) in enumerate(RATINGS)],
        "u.data": [f"{u}\t{i}\t{r}\t{1000 + n}" for n, (u, i, r) in enumerate(RATINGS)],
    }[name]
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("name", ["ratings.csv", "ratings.dat", "u.data"])
@pytest.mark.parametrize("give", ["file", "folder"])
def test_reads_every_format(name, give, tmp_path):
    path = write(tmp_path, name)
    R, users, items = load_movielens(path if give == "file" else tmp_path)
    np.testing.assert_array_equal(users, [3, 7])
    np.testing.assert_array_equal(items, [10, 20, 50])
    assert R.shape == (2, 3) and R.nnz == len(RATINGS) and R.dtype == np.float64
    scale = 2 if name == "ratings.dat" else 1  # the .dat file above stores twice the rating (integers)
    for u, i, r in RATINGS:
        row, col = np.searchsorted(users, u), np.searchsorted(items, i)
        assert R[row, col] == r * scale
    assert R[0, 2] == 0 and 2 not in R[0].indices  # user 3 did not rate item 50: not stored
    assert R.has_sorted_indices


def test_a_path_under_the_home_folder(tmp_path, monkeypatch):
    write(tmp_path, "ratings.csv")
    monkeypatch.setenv("HOME", str(tmp_path))
    R, users, _ = load_movielens("~/ratings.csv")
    assert R.nnz == len(RATINGS) and list(users) == [3, 7]


def test_folder_lookup_and_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="ratings.csv, ratings.dat, u.data"):
        load_movielens(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_movielens(tmp_path / "missing")
    other = tmp_path / "movies.csv"
    other.write_text("movieId,title\n1,Toy Story\n")
    with pytest.raises(ValueError, match="not a MovieLens ratings file"):
        load_movielens(other)
    bad = tmp_path / "ratings.csv"
    bad.write_text("userId,movieId,rating,timestamp\n1,abc,4,5\n")
    with pytest.raises(ValueError, match="not a MovieLens ratings file"):
        load_movielens(bad)
    bad.write_text("userId,movieId,rating,timestamp\n1,2,4,5\n1,2,3,6\n")
    with pytest.raises(ValueError, match="twice"):
        load_movielens(bad)
    bad.write_text("userId,movieId,rating,timestamp\n")
    with pytest.raises(ValueError, match="no ratings"):
        load_movielens(bad)


@pytest.mark.skipif(not (SHARED / "ratings.csv").is_file(), reason="the MovieLens sample is test data outside the package")
def test_reads_the_ml_latest_small_sample():
    R, users, items = load_movielens(SHARED)
    assert R.shape == (users.size, items.size) == (536, 8658)
    assert R.nnz == 82048
    np.testing.assert_array_equal(np.unique(R.data), np.arange(1, 11) / 2)
    assert np.all(np.diff(users) > 0) and np.all(np.diff(items) > 0)
    # The first line of the file: user 1 gave movie 31 a 2.5.
    assert R[np.searchsorted(users, 1), np.searchsorted(items, 31)] == 2.5
