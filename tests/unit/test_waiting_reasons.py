"""The dispatcher's waiting reasons and the attention filter on a long dependency chain.

An artist's chain of a thousand jobs, each waiting for the one before and the first ended in
error, once passed Python's recursion limit in every chores pass (so no waiting reason was
written for anyone), nested the whole chain into each job's reason (31 KB on one job), and made
``GET /jobs?attention=true`` quadratic in the chain's length.
"""

from __future__ import annotations

from test_store import dispatch, failed, submit

from drqueue.config import Config
from drqueue.master.dispatcher import Dispatcher
from drqueue.store.jobquery import JobQuery
from drqueue.store.sqlite import SQLiteStore

CHAIN = 1500


def test_a_chain_longer_than_the_recursion_limit_gets_short_reasons_and_is_all_in_attention(
    tmp_path,
):
    store = SQLiteStore(tmp_path / "drqueue.sqlite")
    try:
        broken = submit(store, 1, 1, retries=0)
        store.record_result(dispatch(store, broken, 0), failed())
        chain = [broken]
        for _ in range(CHAIN):
            chain.append(submit(store, 1, 1, after=[chain[-1]]))
        fine = submit(store, 1, 1)
        waits_for_fine = submit(store, 1, 1, after=[fine])

        dispatcher = Dispatcher(store, Config(root=tmp_path))
        dispatcher._online = ({}, [])
        dispatcher._update_waiting_reasons()

        why = "ended in error: requeue its tasks to go on"
        assert store.get_job(chain[1]).waiting_reason == f"waiting for job {broken} ({why})"
        for before, job_id in zip(chain[1:], chain[2:], strict=False):
            assert store.get_job(job_id).waiting_reason == (
                f"waiting for job {before} (waits for job {broken} ({why}))"
            )
        assert store.get_job(waits_for_fine).waiting_reason == f"waiting for job {fine}"

        page = store.page_jobs(JobQuery(attention=True, limit=100))
        assert page.total == CHAIN + 1
        assert [job.id for job in page.jobs] == chain[:100]
    finally:
        store.close()
