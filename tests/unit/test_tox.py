"""Every test runs in at least one tox environment, selected by marker as tox.ini says."""
import configparser
import json
import shlex
import subprocess
import sys

from _pytest.mark.expression import Expression

from tests.conftest import ROOT

PLUGIN = """
import json, sys
class Dump:
    def pytest_collection_modifyitems(self, items):
        json.dump({i.nodeid: sorted({m.name for m in i.iter_markers()}) for i in items}, open(sys.argv[1], "w"))
import pytest
sys.exit(pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider"], plugins=[Dump()]))
"""


def test_every_collected_test_is_selected_by_some_tox_env(tmp_path):
    dump = tmp_path / "items.json"
    res = subprocess.run([sys.executable, "-c", PLUGIN, str(dump)], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    items = json.loads(dump.read_text())
    assert len(items) > 200
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(ROOT / "tox.ini")
    selectors = []
    for section in ini.sections():
        cmd = ini[section].get("commands", "")
        if not cmd.startswith("pytest"):
            continue
        args = shlex.split(cmd.replace("{posargs}", ""))
        assert "-k" not in args, f"{section}: -k matches test names, not markers; select with -m"
        paths = [a for a in args[1:] if not a.startswith("-") and not (args[args.index(a) - 1] == "-m")]
        expr = Expression.compile(args[args.index("-m") + 1]) if "-m" in args else None
        selectors.append((section, paths or ["tests"], expr))
    def selected(nodeid: str, marks: list[str]) -> bool:
        return any(any(nodeid.startswith(p) for p in paths) and (expr is None or expr.evaluate(marks.__contains__))
                   for _, paths, expr in selectors)

    nowhere = [nodeid for nodeid, marks in items.items() if not selected(nodeid, marks)]
    assert not nowhere, f"{len(nowhere)} tests run in no tox env, e.g. {nowhere[:3]}"
