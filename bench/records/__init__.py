"""Results: the record schema and its files, comparisons against a baseline, named baselines, history."""
from bench.records.schema import (
    CELL_KEY,
    FIELDS,
    GROUP_KEY,
    REQUIRED,
    SCHEMA_VERSION,
    STATUSES,
    Record,
    cell_key,
    from_dict,
    group_key,
    to_json,
)
from bench.records.store import RECORDS_FILE, append, collect, frame, latest, read_file, summarize

__all__ = ["CELL_KEY", "FIELDS", "GROUP_KEY", "RECORDS_FILE", "REQUIRED", "SCHEMA_VERSION", "STATUSES", "Record",
           "append", "cell_key", "collect", "frame", "from_dict", "group_key", "latest", "read_file", "summarize",
           "to_json"]
