"""Per-module mutation scores from a mutmut run in the current directory (tools/mutation.sh).

Score = (killed + timeout) / (killed + timeout + survived); mutants not run (no tests, not
checked) are counted apart. ``--survivors`` also lists the surviving mutants' names.
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

from mutmut.stats import status_by_exit_code


def main() -> None:
    show = "--survivors" in sys.argv
    for meta in sorted(Path("mutants").rglob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        by_module: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        survivors = collections.defaultdict(list)
        for name, code in codes.items():
            status = status_by_exit_code[code]
            by_module[meta.name[: -len(".py.meta")]][status] += 1
            if status == "survived":
                survivors[meta].append(name)
        for _, c in by_module.items():
            caught = c["killed"] + c["timeout"]
            tried = caught + c["survived"]
            if not tried and not c["not checked"]:
                continue
            rest = {k: v for k, v in c.items() if k not in ("killed", "timeout", "survived")}
            score = f"{100 * caught / tried:.0f}%" if tried else "-"
            print(f"{str(meta.relative_to('mutants'))[:-5]:40} killed {c['killed']:4}  timeout {c['timeout']:3}  "
                  f"survived {c['survived']:4}  score {score:>4}  {rest or ''}")
        if show:
            for name in sorted(survivors[meta]):
                print("    survived:", name)


if __name__ == "__main__":
    main()
