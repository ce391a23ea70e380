# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""The output table of a `merit` run: written safely, resumable, one row per record.

Rows are first written in small Parquet files in a folder next to the output (`OUT.partial/`), each written under a
temporary name and renamed when complete. When the run ends (normally, with an error or Ctrl-C) the rows of the
existing output and of the parts are written into `OUT` through a temporary file that replaces it in one rename, and
the parts are removed. A run killed outright leaves its parts behind; the next run counts them as done and merges
them. So nothing that was written is lost, and a record is never written twice (rows are keyed by `path`).

The output is a Parquet file (`.parquet`) or a CSV file (`.csv`, list columns joined with spaces). The settings a
table was made with (command, model, embedding or prompts, thresholds) are recorded with it: in a Parquet file's
schema metadata, next to a CSV file in `OUT.settings.json` (written before the CSV file itself). A run with other
settings refuses to add to the table, and so does a run that finds a CSV file without its settings file (they cannot
be checked).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


KEY_COLUMN = "path"
METADATA_KEY = b"merit"
FORMATS = (".parquet", ".csv")
PART_ROWS = 256
"""Rows buffered before they are written into a part file: at most this many finished records are computed again
after a run is killed."""


def settings_path(output) -> Path:
    """Where the settings of a CSV output are kept: `OUT.settings.json`."""
    output = Path(output)
    return output.with_name(output.name + ".settings.json")


def check_output_location(output) -> Path:
    """`output` as a `Path` once its extension is a known format and its folder can be a folder (checked before any
    work is done).

    Raises:
        `ValueError`: the extension is not one of `FORMATS`, `output` is a folder, or a parent of it is a file.
    """
    output = Path(output)
    if output.suffix.lower() not in FORMATS:
        raise ValueError(
            f"`--output` must end in {' or '.join(FORMATS)}, got {str(output)!r}; the extension chooses the format."
        )
    if output.is_dir():
        raise ValueError(
            f"`--output` {str(output)!r} is a folder; expected a file name ending in {' or '.join(FORMATS)}."
        )
    for parent in output.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(
                    f"`--output` {str(output)!r} cannot be written: {str(parent)!r} is a file, not a folder."
                )
            break
    return output


class ResumableTable:
    """Collects the rows of one run and writes them to `output` (see the module docstring).

    Args:
        output (`str` or `os.PathLike`): a `.parquet` or `.csv` file.
        schema (`pa.Schema`): the columns; the first is `path`, the key of a record.
        settings (`dict`): what the rows were made with (JSON-serialisable); stored with the output and compared on
            resume.
        overwrite (`bool`): start a new table even if `output` (or parts of an interrupted run) exists.
    """

    def __init__(self, output, schema: pa.Schema, settings: dict, overwrite: bool = False):
        self.output = check_output_location(output)
        if schema.names[0] != KEY_COLUMN:
            raise ValueError(f"The first column of a MERIT output must be {KEY_COLUMN!r}, got {schema.names[0]!r}.")
        self.schema = schema.with_metadata({METADATA_KEY: json.dumps(settings, sort_keys=True).encode()})
        self.settings = json.loads(json.dumps(settings))  # as it reads back (tuples become lists)
        self.parts_dir = self.output.with_name(self.output.name + ".partial")
        self.buffer: list[dict] = []
        self.is_csv = self.output.suffix.lower() == ".csv"
        if overwrite:
            self.output.unlink(missing_ok=True)
            settings_path(self.output).unlink(missing_ok=True)
            shutil.rmtree(self.parts_dir, ignore_errors=True)
        self.done = self._existing_keys()
        self.written = 0

    # -- resuming --------------------------------------------------------------------------------------------------

    def _part_files(self) -> list[Path]:
        return sorted(self.parts_dir.glob("part-*.parquet")) if self.parts_dir.is_dir() else []

    def _existing_keys(self) -> set[str]:
        """The records already in the output or in parts left by an interrupted run (checked to match this run)."""
        keys = set()
        if self.output.exists():
            if self.is_csv:
                self._check_csv_settings()
                keys.update(self._csv_keys())
            else:
                self._check_parquet(self.output)
                keys.update(pq.read_table(self.output, columns=[KEY_COLUMN]).column(KEY_COLUMN).to_pylist())
        for part in self._part_files():
            self._check_parquet(part)
            keys.update(pq.read_table(part, columns=[KEY_COLUMN]).column(KEY_COLUMN).to_pylist())
        return keys

    def _check_parquet(self, path: Path) -> None:
        try:
            schema = pq.read_schema(path)
        except (pa.ArrowInvalid, OSError) as error:
            raise _cannot_resume(path, f"it is not a readable Parquet file ({error})") from error
        found = json.loads((schema.metadata or {}).get(METADATA_KEY, b"null"))
        if found != self.settings or schema.names != self.schema.names:
            raise _cannot_resume(
                path,
                f"it was written with {found} and columns {schema.names}, this run uses {self.settings} and columns "
                f"{self.schema.names}",
            )

    def _check_csv_settings(self) -> None:
        path = settings_path(self.output)
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise _cannot_resume(
                self.output,
                f"the settings it was made with are not next to it ({path.name} is missing, as beside a CSV file written "
                "before MERIT kept one), so they cannot be checked against this run's",
            ) from None
        except (OSError, ValueError) as error:
            raise _cannot_resume(
                self.output, f"its settings file {str(path)!r} is not readable JSON ({error})"
            ) from error
        if found != self.settings:
            raise _cannot_resume(self.output, f"it was written with {found}, this run uses {self.settings}")

    def _csv_keys(self) -> list[str]:
        with open(self.output, encoding="utf-8", newline="") as file:
            reader = csv.reader(file)
            header = next(reader, None)
            if header != self.schema.names:
                raise _cannot_resume(self.output, f"its columns are {header}, this run writes {self.schema.names}")
            return [row[0] for row in reader if row]

    # -- writing ---------------------------------------------------------------------------------------------------

    def add(self, rows: list[dict]) -> None:
        """Adds finished rows; they reach a part file once `PART_ROWS` are buffered (or at `flush`)."""
        self.buffer.extend(rows)
        if len(self.buffer) >= PART_ROWS:
            self.flush()

    def flush(self) -> None:
        """Writes the buffered rows into a new part file (temporary name, then renamed)."""
        if not self.buffer:
            return
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist(self.buffer, schema=self.schema)
        number = len(self._part_files())
        final = self.parts_dir / f"part-{number:06d}.parquet"
        temporary = self.parts_dir / f".part-{number:06d}.parquet.tmp"
        pq.write_table(table, temporary)
        os.replace(temporary, final)
        self.done.update(row[KEY_COLUMN] for row in self.buffer)
        self.written += len(self.buffer)
        self.buffer = []

    def finalize(self) -> None:
        """Flushes, then writes the existing output and every part into `output` in one rename, and removes the
        parts. Safe to call again after an interruption (rows are written once per `path`)."""
        self.flush()
        parts = self._part_files()
        if not parts:
            return
        temporary = self.output.with_name(f".{self.output.name}.tmp")
        sources = ([self.output] if self.output.exists() else []) + parts
        if self.is_csv:
            self._merge_csv(sources, temporary)
            _write_atomically(settings_path(self.output), json.dumps(self.settings, indent=2, sort_keys=True) + "\n")
        else:
            self._merge_parquet(sources, temporary)
        os.replace(temporary, self.output)
        shutil.rmtree(self.parts_dir, ignore_errors=True)

    def _merge_parquet(self, sources: list[Path], temporary: Path) -> None:
        seen = set()
        with pq.ParquetWriter(temporary, self.schema) as writer:
            for source in sources:
                for batch in pq.ParquetFile(source).iter_batches():
                    table = pa.Table.from_batches([batch]).cast(self.schema)
                    keys = table.column(KEY_COLUMN).to_pylist()
                    keep = [index for index, key in enumerate(keys) if key not in seen]
                    seen.update(keys)
                    if keep:
                        writer.write_table(table.take(keep) if len(keep) < len(keys) else table)

    def _merge_csv(self, sources: list[Path], temporary: Path) -> None:
        seen = set()
        with open(temporary, "w", encoding="utf-8", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(self.schema.names)
            if sources and sources[0] == self.output:
                with open(self.output, encoding="utf-8", newline="") as existing:
                    reader = csv.reader(existing)
                    next(reader, None)
                    for row in reader:
                        if row and row[0] not in seen:
                            seen.add(row[0])
                            writer.writerow(row)
                sources = sources[1:]
            for source in sources:
                for row in pq.read_table(source).to_pylist():
                    if row[KEY_COLUMN] not in seen:
                        seen.add(row[KEY_COLUMN])
                        writer.writerow([_csv_cell(row[name]) for name in self.schema.names])


def _cannot_resume(path: Path, reason: str) -> ValueError:
    return ValueError(
        f"Cannot resume into {str(path)!r}: {reason}; pass --overwrite to replace it or choose another --output."
    )


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _csv_cell(value):
    if isinstance(value, list):
        return " ".join(str(item) for item in value)
    return value


def write_errors(output, errors: list[tuple[str, str]]) -> Path | None:
    """Writes the records that could not be read, with their errors, to `OUT.errors.csv` (replacing the file of an
    earlier run; removed when there are none). Those records are not in the output and are tried again next time.

    Returns:
        `Path` of the errors file, or `None` when there were no errors.
    """
    path = Path(output).with_name(Path(output).name + ".errors.csv")
    if not errors:
        path.unlink(missing_ok=True)
        return None
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["path", "error"])
        writer.writerows(errors)
    os.replace(temporary, path)
    return path
