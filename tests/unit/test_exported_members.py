"""``repertory.__all__`` lists exactly the public names of the package namespace."""

import types

import repertory


def test_all_matches_public_names():
    import __future__

    public = {n for n, v in vars(repertory).items()
              if not n.startswith("_") and not isinstance(v, (types.ModuleType, __future__._Feature))}
    assert set(repertory.__all__) == public
    assert len(repertory.__all__) == len(set(repertory.__all__))


def test_import_is_cheap():
    import subprocess
    import sys

    code = "import sys, repertory; print('ray' in sys.modules, 'litellm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
