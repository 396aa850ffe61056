"""What a user reads: comparison tables (terminal, Markdown), the self-contained HTML report with
plots, and the flat CSV/parquet export, all rendered from records."""
