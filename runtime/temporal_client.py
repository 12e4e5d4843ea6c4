"""Connecting to Temporal the standard way (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
TEMPORAL_API_KEY, TEMPORAL_TLS_* or a TEMPORAL_CONFIG_FILE profile), pydantic converter;
and a deadline on every call a client makes."""

import asyncio
import contextlib
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from temporalio.client import (
    CancelWorkflowInput,
    Client,
    DescribeWorkflowInput,
    Interceptor,
    OutboundInterceptor,
    QueryWorkflowInput,
    SignalWorkflowInput,
    StartWorkflowInput,
    StartWorkflowUpdateInput,
    StartWorkflowUpdateWithStartInput,
    TerminateWorkflowInput,
    WorkflowExecutionDescription,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateHandle,
    WorkflowUpdateStage,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfig
from temporalio.service import RPCError, RPCStatusCode

T = TypeVar("T")


class _Timed(Protocol):
    rpc_timeout: timedelta | None


async def connect(**overrides: Any) -> Client:
    """Lazy: a process starts while Temporal is down, and its calls fail (and are retried)
    until it is back."""
    config: dict[str, Any] = dict(ClientConfig.load_client_connect_config())
    config.setdefault("target_host", "localhost:7233")
    config.update(overrides)
    config.setdefault("lazy", True)
    return await Client.connect(**config, data_converter=pydantic_data_converter)


def with_deadline(client: Client, seconds: float) -> Client:
    """The same connection, every call bounded by `seconds` (see `Deadline`)."""
    config = client.config()
    config["interceptors"] = [*config["interceptors"], Deadline(seconds)]
    return Client(**config)


class Deadline(Interceptor):
    """Every workflow call answers within `seconds` or fails with `RPCError`
    DEADLINE_EXCEEDED (an update: `WorkflowUpdateRPCTimeoutOrCancelledError`). Each RPC
    carries the deadline to the server, and the whole call (connecting a lazy client,
    an update's wait for its outcome) is bounded too: a frozen server keeps its connections
    open and would otherwise hold the caller for as long as TCP keepalive allows."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _Bounded(next, self.seconds)


class _Bounded(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, seconds: float) -> None:
        super().__init__(next)
        self.seconds = seconds
        self.rpc_timeout = timedelta(seconds=seconds)

    async def _within(self, call: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self.seconds):
                return await call
        except TimeoutError:
            raise RPCError(
                f"Temporal did not answer within {self.seconds} s",
                RPCStatusCode.DEADLINE_EXCEEDED,
                b"",
            ) from None

    async def _outcome(self, handle: WorkflowUpdateHandle[Any]) -> WorkflowUpdateHandle[Any]:
        """Wait for an update's outcome here, within the deadline; the caller's own wait
        then finds it known."""
        with contextlib.suppress(WorkflowUpdateFailedError):  # the caller's result() raises it
            await handle.result(rpc_timeout=self.rpc_timeout)
        return handle

    def _bound(self, input: _Timed) -> None:
        input.rpc_timeout = input.rpc_timeout or self.rpc_timeout

    async def _update(
        self, start: Awaitable[WorkflowUpdateHandle[Any]], stage: WorkflowUpdateStage
    ) -> WorkflowUpdateHandle[Any]:
        async def call() -> WorkflowUpdateHandle[Any]:
            handle = await start
            return await self._outcome(handle) if stage == WorkflowUpdateStage.COMPLETED else handle

        return await self._within(call())

    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
        self._bound(input)
        return await self._within(super().start_workflow(input))

    async def signal_workflow(self, input: SignalWorkflowInput) -> None:
        self._bound(input)
        await self._within(super().signal_workflow(input))

    async def query_workflow(self, input: QueryWorkflowInput) -> Any:
        self._bound(input)
        return await self._within(super().query_workflow(input))

    async def describe_workflow(self, input: DescribeWorkflowInput) -> WorkflowExecutionDescription:
        self._bound(input)
        return await self._within(super().describe_workflow(input))

    async def cancel_workflow(self, input: CancelWorkflowInput) -> None:
        self._bound(input)
        await self._within(super().cancel_workflow(input))

    async def terminate_workflow(self, input: TerminateWorkflowInput) -> None:
        self._bound(input)
        await self._within(super().terminate_workflow(input))

    async def start_workflow_update(
        self, input: StartWorkflowUpdateInput
    ) -> WorkflowUpdateHandle[Any]:
        self._bound(input)
        return await self._update(super().start_workflow_update(input), input.wait_for_stage)

    async def start_update_with_start_workflow(
        self, input: StartWorkflowUpdateWithStartInput
    ) -> WorkflowUpdateHandle[Any]:
        self._bound(input)
        stage = input.update_workflow_input.wait_for_stage
        return await self._update(super().start_update_with_start_workflow(input), stage)
