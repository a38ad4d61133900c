"""Reading a user's table file into checked columns: a CSV file or a NumPy ``.npz``, with messages naming the place.

Each check raises a ValueError (FileNotFoundError for a missing file) naming the file, the line or row, the column
and what is allowed; ``TableFileDataModule`` builds its splits from these columns.
"""

from __future__ import annotations

import csv
import difflib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SUFFIXES = (".csv", ".npz")
CLONE_ROOT = Path(__file__).resolve().parents[3]  # src/dlbasics/data/ -> the repository (in a clone)


@dataclass
class Table:
    """A file's columns, each ``(N, width)`` (CSV: strings of width 1; ``.npz``: the arrays as stored).

    Args:
        name: the file, as messages name it.
        columns: column name -> ``(N, width)`` values.
        lines: the file line of each row (CSV), or None (``.npz``: rows are counted from 0).
    """

    name: str
    columns: dict[str, np.ndarray]
    lines: np.ndarray | None = None

    def at(self, row: int, column: str, entry: int = 0) -> str:
        """Where a value is, for a message: ``my.csv line 7, column 'x1'`` or ``my.npz row 6, column 'x'[1]``."""
        where = f"line {self.lines[row]}" if self.lines is not None else f"row {row}"
        part = f"[{entry}]" if self.columns[column].shape[1] > 1 else ""
        return f"{self.name} {where}, column {column!r}{part}"


def find_file(path: str | Path) -> Path:
    """``path``; a relative one that the current folder lacks is also looked for in the clone's root, so that the
    shipped configs find ``examples/`` from any folder. A FileNotFoundError names where it looked."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_absolute() and (CLONE_ROOT / path).is_file():
        return CLONE_ROOT / path
    where = "" if path.is_absolute() else f" (relative paths are read from the current folder, {Path.cwd()})"
    state = "is a folder, not a file" if path.is_dir() else "does not exist"
    raise FileNotFoundError(f"data file {str(path)!r} {state}{where}")


def read_table(path: str | Path) -> Table:
    """The columns of a ``.csv`` or ``.npz`` file; a FileNotFoundError or ValueError that names what is wrong."""
    path = find_file(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"data file {str(path)!r} has the suffix {path.suffix or '(none)'!r}; the files read are: "
                         f"{', '.join(SUFFIXES)} (see docs/own_data.md)")
    return read_csv(path) if suffix == ".csv" else read_npz(path)


def read_csv(path: Path) -> Table:
    """A header row of column names, then one row of values per sample; blank lines are skipped."""
    rows, lines, failure = [], [], None
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file)
            header = [name.strip() for name in next(reader, [])]
            check_header(header, path)
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise ValueError(f"{path} line {reader.line_num} has {len(row)} values, but the header names "
                                     f"{len(header)} columns ({', '.join(header)})")
                rows.append([cell.strip() for cell in row])
                lines.append(reader.line_num)
    except (UnicodeDecodeError, csv.Error) as err:
        failure = f"{path} is not a text CSV file ({err}); save it as CSV (UTF-8)"
    if failure:  # raised here, not in the except block: the message shown is this one, not the decoder's
        raise ValueError(failure)
    cells = np.array(rows, dtype=str).reshape(len(rows), len(header))  # (N, columns)
    return Table(str(path), {name: cells[:, [k]] for k, name in enumerate(header)}, np.array(lines))


def check_header(header: list[str], path: Path) -> None:
    if not header:
        raise ValueError(f"{path} is empty; the first line must name the columns, e.g. x1,x2,y")
    if "" in header or len(set(header)) < len(header):
        raise ValueError(f"{path} line 1 must name each column once (no empty or repeated names), got: "
                         f"{', '.join(map(repr, header))}")


def read_npz(path: Path) -> Table:
    """One array per column, all of length N: ``(N,)``, or ``(N, F)`` for F feature columns under one name."""
    arrays, failure = {}, None
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as err:  # not a zip of .npy files, or object arrays (pickles are refused)
        failure = f"{path} cannot be read as a NumPy .npz of arrays ({err})"
    if failure:
        raise ValueError(failure)
    if not arrays:
        raise ValueError(f"{path} holds no arrays; save them with np.savez({path.name!r}, x=x, y=y)")
    shapes = {name: a.shape for name, a in arrays.items()}
    if any(len(s) not in (1, 2) for s in shapes.values()) or len({s[0] for s in shapes.values()}) > 1:
        raise ValueError(f"the arrays of {path} must be (N,) or (N, F) with the same N, got: "
                         f"{', '.join(f'{k} {v}' for k, v in shapes.items())}")
    return Table(str(path), {name: a.reshape(len(a), -1) for name, a in arrays.items()})


def column(table: Table, name: str, role: str) -> str:
    """``name`` if the table has that column, else a ValueError listing the columns (and the closest one)."""
    if name not in table.columns:
        close = difflib.get_close_matches(str(name), list(table.columns), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{role} column {name!r} is not in {table.name}; its columns are: "
                         f"{', '.join(table.columns)}{hint}")
    return name


def numbers(table: Table, name: str) -> np.ndarray:
    """Column ``name`` as finite float64 ``(N, width)``; a ValueError naming the first bad value's place."""
    values = table.columns[name]
    out = as_floats(values)
    if out is None:  # look for the culprit only then: one Python call per value
        row, entry = next((r, e) for (r, e), v in np.ndenumerate(values) if not is_number(v))
        bad = "is empty" if str(values[row, entry]) == "" else f"{str(values[row, entry])!r} is not a number"
        raise ValueError(f"{table.at(row, name, entry)}: {bad}")
    if not np.isfinite(out).all():
        row, entry = np.argwhere(~np.isfinite(out))[0]
        raise ValueError(f"{table.at(row, name, entry)}: {out[row, entry]} is not a finite number; remove the row or "
                         "fill in the value")
    return out


def as_floats(values: np.ndarray) -> np.ndarray | None:
    """``values`` as float64, or None if some are not numbers (returned, not raised: the message raised then is
    the caller's, not numpy's, since the command line shows the innermost error)."""
    try:
        return values.astype(np.float64)
    except (ValueError, TypeError):
        return None


def is_number(value: object) -> bool:
    try:
        float(value)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return False
    return True


def class_indices(table: Table, name: str) -> tuple[np.ndarray, list]:
    """Labels as int64 0..C-1 in the sorted order of their values, and those values (numbers or words)."""
    values = table.columns[name]
    if values.shape[1] != 1:
        raise ValueError(f"label column {name!r} of {table.name} has shape {values.shape}; it must be one column")
    labels = values[:, 0]
    if as_floats(labels) is not None:
        labels = numbers(table, name)[:, 0]
        fractional = np.flatnonzero(labels != np.round(labels))
        if len(fractional):
            raise ValueError(f"{table.at(fractional[0], name)}: class labels are integers or words, got "
                             f"{labels[fractional[0]]:g}; for a numeric target use task: regression")
        labels = labels.astype(np.int64)
    elif labels.dtype.kind == "U" and (labels == "").any():
        raise ValueError(f"{table.at(int(np.flatnonzero(labels == '')[0]), name)}: the label is empty")
    values, y = np.unique(labels, return_inverse=True)
    classes = values.tolist()  # numpy scalars -> int / str
    if len(classes) < 2:
        raise ValueError(f"label column {name!r} of {table.name} holds one class ({classes[0]!r}) in all "
                         f"{len(y)} rows; a classifier needs at least 2")
    return y.reshape(-1).astype(np.int64), classes
