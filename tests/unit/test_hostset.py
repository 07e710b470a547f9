"""The host set follows the cluster's nodes: its size, when it is checked, where new hosts go,
and that jump consistent hashing moves only the sessions of the hosts added or removed."""

from repertory.host.hostset import HostSet
from repertory.host.routing import host_index


def test_the_count_follows_the_nodes_cpus_unless_it_is_fixed():
    assert HostSet().size([("a", 2.0), ("b", 1.0)]) == 3
    assert HostSet().size([("a", 0.0)]) == 1
    assert HostSet(4).size([("a", 1.0)]) == 4


def test_the_nodes_are_checked_once_per_period_and_never_with_a_fixed_count():
    now = [0.0]
    hs = HostSet(period=2.0, clock=lambda: now[0])
    assert not hs.due()
    now[0] = 2.5
    assert hs.due() and not hs.due()  # one caller looks; the others go on
    now[0] = 5.0
    assert hs.due()
    assert not HostSet(3, period=0.0).due()
    assert HostSet(0, period=0.0).due()  # Settings.num_hosts=0: one per CPU, followed


def test_added_hosts_go_to_the_nodes_below_their_share():
    placed = ["a", "b"]  # one CPU each, one host each; node c joins with two CPUs
    assert HostSet.placement([("a", 1.0), ("b", 1.0), ("c", 2.0)], placed, 4) == ["c", "c"]
    # a host on a node that left does not count for any live node
    assert HostSet.placement([("a", 1.0), ("c", 3.0)], ["a", "gone"], 4) == ["c", "c"]


def test_growing_moves_only_the_sessions_of_the_added_hosts():
    keys = [f"u:s{i}" for i in range(3000)]
    before = {k: host_index(k, 3) for k in keys}
    after = {k: host_index(k, 4) for k in keys}
    moved = [k for k in keys if before[k] != after[k]]
    assert all(after[k] == 3 for k in moved)  # every moved session went to the new host
    assert 0.18 < len(moved) / len(keys) < 0.32  # about a quarter
