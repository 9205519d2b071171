"""The money fault matrix on a SQLite ledger (bench/faults.py runs it on PostgreSQL too)."""

import pytest

from tests.resources.providers.api.fault_matrix import cell_id, cells, run_cell


@pytest.mark.parametrize(("name", "fault", "killed"), cells(), ids=[cell_id(*cell) for cell in cells()])
def test_every_fault_costs_at_most_one_task_and_exactly_what_was_billed(name, fault, killed, tmp_path):
    result = run_cell(name, fault, killed, f"sqlite:///{tmp_path / 'ledger.sqlite'}", tmp_path)
    assert result.tasks <= 1, result
    assert abs(result.ledger_usd - result.billed_usd) <= 2e-6, result  # micro-dollar rounding
    assert result.overspend_usd == 0, result
    assert result.reserved_usd == 0, result  # every job ends paid, refused or released
