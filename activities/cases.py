"""After-sales case activities: save a case's snapshot; ask its order to settle it."""

from temporalio import activity
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from domain.after_sales import AfterSalesCase
from domain.errors import ErrorCode
from domain.messages import CaseSettlement, SettleCaseRequest
from store import cases
from store.db import Database
from workflows import ids


class CaseActivities:
    def __init__(self, db: Database, client: Client) -> None:
        self.db = db
        self.client = client

    @activity.defn(name=ids.SAVE_CASE)
    async def save_case(self, case: AfterSalesCase) -> None:
        async with self.db.transaction() as session:
            await cases.save(session, case)

    @activity.defn(name=ids.SETTLE_CASE)
    async def settle_case(self, req: SettleCaseRequest) -> CaseSettlement:
        """An update on the order's workflow, with the case id as update id: a retry after a
        lost answer is answered by the same settlement, never a second refund."""
        handle = self.client.get_workflow_handle(ids.order_workflow_id(req.order_id))
        try:
            result: CaseSettlement = await handle.execute_update(
                ids.SETTLE_CASE_UPDATE,
                req,
                id=f"settle-{req.case_id}",
                result_type=CaseSettlement,
            )
        except WorkflowUpdateFailedError as err:  # the order refused: it never will accept
            raise ApplicationError(
                f"order {req.order_id} refused to settle case {req.case_id}: {err.cause}",
                type=ErrorCode.INVALID_TRANSITION.value,
                non_retryable=True,
            ) from err
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                raise ApplicationError(
                    f"order {req.order_id} has no running workflow", non_retryable=True
                ) from err
            raise
        return result
