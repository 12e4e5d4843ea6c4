"""The bare engine, for comparison: a workflow that does no work, driven like an order
(update-with-start, then three updates), on its own worker process.

    python -m bench.bare        # the worker (TEMPORAL_ADDRESS), task queue `bare`
"""

import asyncio

from temporalio import workflow
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

TASK_QUEUE = "bare"
STEPS = 4  # like an order's place, pay, ship, confirm


@workflow.defn
class BareWorkflow:
    def __init__(self) -> None:
        self.steps = 0

    @workflow.run
    async def run(self, order_id: str) -> int:
        await workflow.wait_condition(lambda: self.steps >= STEPS)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.steps

    @workflow.update
    async def step(self, name: str) -> int:
        self.steps += 1
        return self.steps


async def main() -> None:
    from runtime.temporal_client import connect

    client = await connect(lazy=False)
    await Worker(  # unsandboxed, as our worker runs: the engine at its best
        client,
        task_queue=TASK_QUEUE,
        workflows=[BareWorkflow],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ).run()


if __name__ == "__main__":
    asyncio.run(main())
