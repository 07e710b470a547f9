"""First revisions: in range, and a forked child does not repeat its parent's numbers."""

import os

from repertory.state.session_state import first_revision


def test_first_revisions_are_in_range_and_spread():
    revs = [first_revision() for _ in range(10_000)]
    assert all(1 <= r <= 2**36 for r in revs)
    assert len(set(revs)) > 9_990  # 10,000 draws from 2**36: a repeat is a one-in-a-thousand event


def test_a_forked_child_draws_other_revisions_than_its_parent():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next revisions, then out without running pytest's exit handlers
        try:
            os.write(write, " ".join(str(first_revision()) for _ in range(20)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        child = [int(x) for x in f.read().split()]
    os.waitpid(pid, 0)
    parent = [first_revision() for _ in range(20)]
    assert len(child) == 20 and not set(child) & set(parent)
