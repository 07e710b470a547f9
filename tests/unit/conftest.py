import pytest

import repertory


@pytest.fixture
def rt(tmp_path):
    """The local runtime (no Ray) over a fresh SQLite file."""
    rt = repertory.init(runtime="local", store=f"sqlite:///{tmp_path / 'state.db'}")
    yield rt
    repertory.shutdown()
