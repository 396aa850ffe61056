"""Report files: the --format choice, the --output PATH rule, the flat CSV/parquet table, safe writes."""
from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path
from typing import Any

from bench.errors import RecordError, UsageError
from bench.files import write_atomic
from bench.records import Record

FORMATS = {"md": ".md", "html": ".html", "csv": ".csv", "parquet": ".parquet"}
NEEDS = {"html": ("matplotlib", "matplotlib"), "parquet": ("pyarrow", "pyarrow")}  # format: (module, pip name)


def parse_formats(text: str) -> list[str]:
    """'md,html' -> ['md', 'html'] (validated, de-duplicated, in the order given)."""
    items = [v.strip().lower() for v in text.split(",")]
    if not text.strip() or any(not v for v in items):
        raise UsageError(f"--format: empty name in {text!r}; choose from {', '.join(FORMATS)} (comma-separated)")
    bad = [v for v in items if v not in FORMATS]
    if bad:
        raise UsageError(f"--format: unknown format {bad[0]!r}; choose from {', '.join(FORMATS)} (comma-separated)")
    for fmt in items:
        module, pip = NEEDS.get(fmt, (None, None))
        if module and importlib.util.find_spec(module) is None:
            raise UsageError(f"--format {fmt} needs {module}, which is not installed; pip install {pip}")
    return list(dict.fromkeys(items))


def plan(formats: str | None, output: Path | None) -> dict[str, Path]:
    """format -> file to write, for `bench report`: no --format means Markdown, and only with --output."""
    if formats is None:
        return {} if output is None else {"md": output}
    chosen = parse_formats(formats)
    if output is None:
        raise UsageError(f"--format {formats} needs --output PATH (where to write the report)")
    return output_paths(output, chosen)


def output_paths(output: Path, formats: list[str]) -> dict[str, Path]:
    """One format: PATH is the file. Several: PATH with its suffix replaced by each format's extension."""
    if len(formats) == 1:
        return {formats[0]: output}
    return {fmt: output.with_suffix(FORMATS[fmt]) if output.suffix else output.with_name(output.name + FORMATS[fmt])
            for fmt in formats}


# List and dict fields (history, phases, epoch_times_s, env, versions, data_skipped) become JSON text in
# CSV/parquet: one row per record stays flat and nothing is lost (json.loads gives them back).
def flat_frame(records: list[Record]) -> Any:
    """A pandas DataFrame, one row per record, every column a scalar (pandas imported lazily)."""
    from bench.records import frame

    df = frame(records)
    for name in df.columns:
        if df[name].map(lambda v: isinstance(v, (list, dict))).any():
            df[name] = df[name].map(lambda v: json.dumps(v, sort_keys=True, default=str)
                                    if isinstance(v, (list, dict)) else v)
    return df.convert_dtypes(dtype_backend="numpy_nullable")  # ints stay ints where a value is missing


def render(fmt: str, records: list[Record], problems: list[str] | None = None) -> bytes:
    """The bytes of one report format."""
    if fmt == "md":
        from bench.report.markdown import markdown_report

        return markdown_report(records, problems).encode()
    if fmt == "html":
        from bench.report.html import html_report

        return html_report(records, problems).encode()
    df = flat_frame(records)
    if fmt == "csv":
        return df.to_csv(index=False).encode()
    buf = io.BytesIO()
    try:
        df.to_parquet(buf, index=False, engine="pyarrow")
    except (ValueError, TypeError, OverflowError, NotImplementedError) as exc:  # pyarrow's errors derive from these
        raise RecordError(f"cannot write parquet: a record holds a value parquet cannot store ({exc}); "
                          "write --format csv instead, or fix that record") from None
    return buf.getvalue()


def write(path: Path, data: bytes) -> None:
    """Write the whole report or nothing: a reader never sees half a report."""
    try:
        write_atomic(path, data)
    except OSError as exc:
        raise UsageError(f"cannot write {path} ({exc.strerror or exc}); pass a writable --output") from None


def write_reports(records: list[Record], problems: list[str], paths: dict[str, Path]) -> None:
    """Render every format first, then write: a format that fails to render leaves no file behind."""
    rendered = {fmt: render(fmt, records, problems) for fmt in paths}
    for fmt, path in paths.items():
        write(path, rendered[fmt])


def run_reports(records: list[Record], folder: Path) -> tuple[list[Path], str | None]:
    """`bench run`'s report.md and report.html; an HTML failure is a warning, not a lost run."""
    paths = [folder / "report.md"]
    write(paths[0], render("md", records))
    try:
        html = render("html", records)
    except Exception as exc:  # noqa: BLE001 - the records are safe already: a plot must not fail a finished run
        return paths, f"report.html not written ({type(exc).__name__}: {exc}); try `bench report --format html`"
    paths.append(folder / "report.html")
    write(paths[1], html)
    return paths, None
