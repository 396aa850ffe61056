"""What `bench ab` hands each side's `bench run`: the cell options given, and only those (an older revision
side may not know a newer option, so defaults are left out)."""
from pathlib import Path

from bench.cli.ab import run_args
from bench.cli.parser import build_parser


def _args(*argv: str) -> tuple[str, ...]:
    return run_args(build_parser().parse_args(["ab", "HEAD~1", "HEAD", *argv]), Path("data"))


def test_defaults_add_no_option_an_old_revision_might_not_know():
    got = _args()
    assert not {"--devices", "--gpu", "--warm-caches", "--no-inference", "--epochs", "--threads"} & set(got)
    assert got[got.index("--data-root") + 1] == str(Path("data").resolve())  # a worktree side runs elsewhere


def test_given_cell_options_reach_the_sides():
    got = _args("--devices", "2", "--gpu", "1,3", "--warm-caches", "--no-inference", "--epochs", "3", "--device", "gpu")
    for pair in (("--devices", "2"), ("--gpu", "1,3"), ("--epochs", "3"), ("--device", "gpu")):
        assert got[got.index(pair[0]) + 1] == pair[1]
    assert "--warm-caches" in got and "--no-inference" in got
