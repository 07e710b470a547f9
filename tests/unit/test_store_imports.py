"""Importing repertory loads no store driver it does not use (each check in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys


def _loaded_after(code: str, modules: list[str]) -> dict[str, bool]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps({{m: m in sys.modules for m in {modules!r}}}))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return json.loads(out.splitlines()[-1])


def test_import_repertory_leaves_the_store_drivers_out():
    assert _loaded_after("import repertory", ["redis", "sqlite3"]) == {"redis": False, "sqlite3": False}


def test_import_repertory_stores_leaves_the_store_drivers_out():
    loaded = _loaded_after("import repertory.stores", ["redis", "sqlite3"])
    assert loaded == {"redis": False, "sqlite3": False}


def test_store_classes_still_import_from_the_package():
    code = (
        "from repertory.stores import RedisStore, SQLiteStore, MemoryStore\n"
        "import repertory.stores as stores\n"
        "assert RedisStore.__module__ == 'repertory.stores.redis'\n"
        "assert SQLiteStore.__module__ == 'repertory.stores.sqlite'\n"
        "assert {'RedisStore', 'SQLiteStore'} <= set(dir(stores))\n"
    )
    assert _loaded_after(code, ["redis", "sqlite3"]) == {"redis": True, "sqlite3": True}


def test_unknown_attribute_is_still_an_attribute_error():
    code = (
        "import repertory.stores as stores\n"
        "try:\n"
        "    stores.NoSuchStore\n"
        "except AttributeError as exc:\n"
        "    assert 'NoSuchStore' in str(exc)\n"
        "else:\n"
        "    raise SystemExit('no AttributeError')\n"
    )
    assert _loaded_after(code, ["redis"]) == {"redis": False}
