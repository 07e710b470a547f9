"""The seeded fault schedule and the `repertory chaos` command's input checks (no Ray)."""

import pytest
from typer.testing import CliRunner

from repertory.chaos.faults import FAULT_KINDS, parse_kinds, schedule
from repertory.cli.app import app
from repertory.cli.chaos import parse_duration
from repertory.errors import InvalidInput


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another():
    a = schedule(7, 60, FAULT_KINDS)
    assert a == schedule(7, 60, FAULT_KINDS)
    assert a != schedule(8, 60, FAULT_KINDS)


def test_every_kind_comes_once_per_round_and_faults_stop_before_the_quiet_tail():
    plan = schedule(3, 40, ("host", "replica", "store-actor"), every=4, warmup=3, quiet_tail=5)
    assert plan[0].at == 3 and all(f.at <= 35 for f in plan)
    assert [f.at for f in plan] == sorted(f.at for f in plan)
    for i in range(0, len(plan) - 2, 3):
        assert sorted(f.kind for f in plan[i:i + 3]) == ["host", "replica", "store-actor"]


def test_fault_kinds_are_checked():
    assert parse_kinds("host, replica,host") == ("host", "replica")
    with pytest.raises(InvalidInput, match="unknown fault 'hots'"):
        parse_kinds("hots")
    assert parse_kinds("node") == ("node",)
    assert parse_kinds("redis-failover,host") == ("redis-failover", "host")
    with pytest.raises(InvalidInput, match="choose one of them"):
        parse_kinds("redis-restart,redis-failover")


def test_durations():
    assert parse_duration("90") == 90 and parse_duration("45s") == 45 and parse_duration("5m") == 300
    for bad in ("", "0", "-3s", "5 minutes"):
        with pytest.raises(InvalidInput, match="duration"):
            parse_duration(bad)


def test_the_command_refuses_bad_input_with_one_line_and_exit_1():
    result = CliRunner().invoke(app, ["chaos", "--duration", "soon"])
    assert result.exit_code == 1 and "duration 'soon'" in result.output
    result = CliRunner().invoke(app, ["chaos", "--faults", "redis-restart,redis-failover"])
    assert result.exit_code == 1 and "choose one of them" in result.output
