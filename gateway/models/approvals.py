"""The approvals API's bodies, queries and answers: ``/v1/approvals`` (list, one, create), its resolve (by
Bearer token or by a signed link) and ``bulk-resolve``.

Also the shapes the messages API shares with it: a non-blank string, a timestamp, a reference to a schema
that stays hand-written in the document (Task, Form, TaskState), and the cursor a listing pages with."""

from __future__ import annotations

import base64
import binascii
import math
from enum import StrEnum
from typing import Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, StrictBool, StrictStr, StringConstraints
from pydantic import WithJsonSchema as Schema

from a2ui import WHITESPACE
from gateway.errors import MAX_ID
from gateway.models.base import Answer, Body, Query, QueryInt
from mesh.approvals.resolve import REASON_MAX
from mesh.policy.model import APPROVALS_REQUIRED_MAX

# ---------------------------------------------------------------- shared types

NOT_BLANK = f"[^{WHITESPACE}]"  # some character str.strip keeps, spelled the same to every regex engine
MESSAGE_LIMIT = 2_000  # a listing's message text is cut here; the approval itself keeps all of it


def clip(text: str) -> tuple[str, bool]:
    """A listing's message: at most ``MESSAGE_LIMIT`` characters, and whether it was cut. A listing of 500
    holds stays a bounded answer however long the agents' texts; one approval shows its whole text."""
    return (text[:MESSAGE_LIMIT], True) if len(text) > MESSAGE_LIMIT else (text, False)


def _not_blank(value: str) -> str:
    """The server's rule (``str.strip``) in Python; the pattern says the same to the document's readers."""
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Name = Annotated[
    StrictStr,
    StringConstraints(min_length=1, max_length=200),
    AfterValidator(_not_blank),
    Field(json_schema_extra={"pattern": NOT_BLANK}),
]
Text = Annotated[
    StrictStr,
    StringConstraints(min_length=1, max_length=10_000),
    AfterValidator(_not_blank),
    Field(json_schema_extra={"pattern": NOT_BLANK}),
]

Timestamp = Annotated[str, Schema({"type": "string", "format": "date-time"})]
MaybeTimestamp = Annotated[str | None, Schema({"type": ["string", "null"], "format": "date-time"})]


# pydantic refuses a local ``$ref`` it did not make (it looks each one up among its own definitions) but lets
# an absolute one through: a hand-written schema is named under this base while generating, and
# ``Reply.model_json_schema`` turns the name into the document's own ``#/components/schemas/...``.
HAND_WRITTEN = "https://airlock.invalid/openapi.json#/components/schemas/"


def ref(name: str) -> Schema:
    """A schema that stays hand-written in the document (the A2A shapes), referred to by name."""
    return Schema({"$ref": HAND_WRITTEN + name})


def _local(node: Any) -> Any:
    if isinstance(node, list):
        return [_local(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _local(v) for k, v in node.items()}
    if isinstance(out.get("$ref"), str) and out["$ref"].startswith(HAND_WRITTEN):
        out["$ref"] = "#/components/schemas/" + out["$ref"].removeprefix(HAND_WRITTEN)
    return out


class Reply(Answer):
    """An answer whose schema may refer to the document's hand-written shapes (``ref``)."""

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return _local(super().model_json_schema(*args, **kwargs))


TaskStateRef = Annotated[str, ref("TaskState")]
TaskRef = Annotated[dict[str, Any], ref("Task")]
FormRef = Annotated[dict[str, Any], ref("Form")]


# ---------------------------------------------------------------- the cursor of a listing


def encode_cursor(created_at: float, approval_id: str) -> str:
    """Where the next page starts: after this (created_at, id), the listing's order. Opaque to clients (its
    spelling may change); base64url so it travels in a query string as it is."""
    raw = orjson.dumps([created_at, approval_id])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decode_cursor(value: Any) -> Any:
    """A cursor back into (created_at, id); anything a listing never gave is refused here, before SQL."""
    if not isinstance(value, str) or not value or len(value) > CURSOR_MAX:
        raise ValueError("is not a cursor this listing gave")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        created_at, approval_id = orjson.loads(raw)
    except (binascii.Error, ValueError, TypeError):  # orjson.JSONDecodeError is a ValueError
        raise ValueError("is not a cursor this listing gave") from None
    if (
        isinstance(created_at, bool)
        or not isinstance(created_at, int | float)
        or not math.isfinite(created_at)
        or not isinstance(approval_id, str)
        or not 0 < len(approval_id) <= 200
    ):
        raise ValueError("is not a cursor this listing gave")
    return float(created_at), approval_id


CURSOR_MAX = 400
Cursor = Annotated[
    tuple[float, str],
    BeforeValidator(_decode_cursor),
    Schema({"type": "string", "minLength": 1, "maxLength": CURSOR_MAX, "pattern": "^[A-Za-z0-9_-]+$"}),
]


# ---------------------------------------------------------------- requests


class ApprovalCreate(Body):
    """POST /v1/approvals: a tool call to queue for a person. Unknown fields are refused (a misspelt
    field would otherwise queue a call without it)."""

    model_config = ConfigDict(extra="forbid")

    tool: Name = Field(description="Tool name (e.g. exec, read, write).")
    agent: Name = Field(description="Agent identifier.")
    message: Text = Field(description="Why approval is asked.")
    command: Text | None = Field(None, description="Command (exec) (null: left out).")
    path: Text | None = Field(None, description="File path (read/write) (null: left out).")
    run_id: Name | None = Field(None, description="Run identifier, for grouping and run grants (null: left out).")


class ApprovalResolve(Body):
    """POST /v1/approvals/{id}/resolve with a Bearer token."""

    approved: StrictBool = Field(description="true to approve, false to deny.")
    resolved_by: Name | None = Field(None, description="Who resolved it (default api).")
    persist: StrictBool = Field(
        False,
        description=(
            "With approved: true, add an exact-match allow rule (tool plus exact command or path; plugin "
            "exact_call) so the identical call is allowed from now on. Admin role only; never on a signed link."
        ),
    )
    reason: StrictStr = Field(
        None, max_length=REASON_MAX, description="Why; on a denial the agent is told it (Denied by alice: ...)."
    )
    arguments: dict[str, Any] = Field(
        None,
        description=(
            "With approved: true, the tool call's new arguments (the hold's policy must have allow_edits); the "
            "edited call is judged by the policies again (400 naming a policy that blocks it)."
        ),
    )


class SignedLinkResolve(Body):
    """A signed link's POST body, which may be left out: the link carries the decision. approved may
    repeat it (else 401) and persist may only be false."""

    approved: StrictBool | None = Field(None, description="If given, the link's own decision.")
    resolved_by: Name | None = Field(None, description="Who resolved it (default signed-link).")
    persist: Literal[False] | None = Field(None, description="A signed link can never persist a rule.")


class BulkResolve(Body):
    """POST /v1/approvals/bulk-resolve: every pending approval of one run."""

    run_id: Name = Field(description="Every pending approval of this run is resolved.")
    action: Literal["approve", "deny"]
    resolved_by: Name | None = Field(None, description="Default api.")
    ids: list[StrictStr] | None = Field(
        None, description="The pending ids the caller reviewed; must equal the run's pending set (else 409)."
    )


class ApprovalListQuery(Query):
    """GET /v1/approvals: one run's or all pending approvals, a page at a time."""

    # a query value is never null: left out, the default (which is not validated)
    run_id: str = Field(None, min_length=1, description="Only this run.")
    limit: QueryInt = Field(50, ge=1, le=500, description="At most this many approvals (default 50).")
    cursor: Cursor = Field(None, description="The next_cursor of the previous page; left out, the first page.")


class SignedLinkQuery(Query):
    """A signed link's query: all three or none (a URL with sig is a link; half a link is refused)."""

    decision: Literal["approve", "deny"] = Field(None, description="approve or deny (signed).")
    exp: QueryInt = Field(None, ge=0, le=MAX_ID, description="Unix time the link stops working (signed).")
    sig: str = Field(None, pattern="^[0-9a-f]{64}$", description="HMAC-SHA256 over the id, decision and exp (hex).")


# ---------------------------------------------------------------- answers


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    SUBMITTED = "submitted"
    EXPIRED = "expired"
    CANCELED = "canceled"


class Given(Reply):
    """One approval of a hold that needs several."""

    by: str = Field(description="The approver's subject.")
    at: Timestamp
    surface: str = Field(description="Where it was given (api, dashboard, slack, a2a, ...).")


class Deciding(Reply):
    """How a hold is being decided, as every listing shows it."""

    approvals_required: int = Field(ge=1, le=APPROVALS_REQUIRED_MAX, description="Distinct approvals it needs.")
    approvals: list[Given] = Field(
        max_length=APPROVALS_REQUIRED_MAX, description="The approvals given so far (a quorum's), oldest first."
    )
    escalated_at: MaybeTimestamp = Field(
        description="When it was escalated (its policy's escalate_after); null if not."
    )
    allow_edits: bool = Field(description="Whether an approver may approve it with new arguments.")


class Approval(Deciding):
    """One approval, as GET /v1/approvals/{id} and the listing show it."""

    id: str = Field(description="The approval's id.")
    task_id: str = Field(description="The held task (message_id on the /messages surface).")
    kind: Literal["approval", "input"]
    tool: str | None = Field(description="Tool name (exec, read, write, ...).")
    command: str | None = Field(description="The command of an exec-style call.")
    path: str | None = Field(description="The file path of a file call.")
    agent: str | None = Field(description="The agent whose call this is.")
    session: str | None = Field(description="Session (A2A contextId).")
    run_id: str | None = Field(description="The run the call belongs to, for run groups and grants.")
    message: str = Field(
        description=(
            f"Why it is held / what the agent said. A listing cuts it at {MESSAGE_LIMIT} characters "
            "(message_truncated); GET /v1/approvals/{id} shows all of it."
        )
    )
    message_truncated: bool = Field(description="Whether message was cut (only ever in a listing).")
    policy: str | None
    status: ApprovalStatus
    created_at: Timestamp
    expires_at: Timestamp
    resolved_at: MaybeTimestamp = Field(None, description="Only once resolved.")
    resolved_by: str | None = Field(None, description="Only once resolved.")
    reason: str | None = Field(None, max_length=REASON_MAX, description="Only once resolved: the approver's reason.")
    edited: list[str] | None = Field(
        None, description="Only once resolved: the names of the arguments an approver changed (null: none)."
    )
    arguments: dict[str, Any] = Field(None, description="The call's arguments, shown where allow_edits is true.")


RUN_GROUPS_MAX = 100
RUN_GROUP_IDS_MAX = 1000  # the store's default


class RunGroup(Reply):
    run_id: str
    count: int = Field(ge=2, description="How many of the run's approvals are pending.")
    ids: list[str] = Field(
        max_length=RUN_GROUP_IDS_MAX,
        description=f"The pending approvals' ids, oldest first (the first {RUN_GROUP_IDS_MAX} when count is more).",
    )


class ApprovalList(Reply):
    """A page of pending approvals, oldest first (then by id), and the runs with two or more of them."""

    approvals: list[Approval]
    run_groups: list[RunGroup] = Field(
        max_length=RUN_GROUPS_MAX,
        description=(
            f"Runs with two or more pending approvals, whatever the page: the {RUN_GROUPS_MAX} whose oldest hold is "
            "oldest (only the given run with run_id)."
        ),
    )
    next_cursor: str | None = Field(
        description="Pass as cursor for the next page; null on the last page.",
    )


class ApprovalCreated(Reply):
    id: str
    task_id: str
    status: Literal["pending"]
    expires_at: Timestamp


class ApprovalAutoApproved(Reply):
    id: str
    task_id: str
    status: Literal["approved"]
    message: str = Field(description="Which run grant or persisted rule approved it.")


class ApprovalResolved(Reply):
    id: str
    status: ApprovalStatus = Field(description="pending after an approval a quorum still needs more of.")
    approved: bool
    persisted: bool
    task_state: TaskStateRef
    approvals_required: int = Field(ge=1, le=APPROVALS_REQUIRED_MAX)
    approvals: list[Given] = Field(max_length=APPROVALS_REQUIRED_MAX)


class BulkResolved(Reply):
    resolved: int = Field(ge=0)
    ids: list[str]


MODELS = (
    ApprovalCreate,
    ApprovalResolve,
    SignedLinkResolve,
    BulkResolve,
    Approval,
    RunGroup,
    ApprovalList,
    ApprovalCreated,
    ApprovalAutoApproved,
    ApprovalResolved,
    BulkResolved,
)
QUERIES: dict[tuple[str, str], type[Query]] = {
    ("get", "/v1/approvals"): ApprovalListQuery,
    ("get", "/v1/approvals/{id}/resolve"): SignedLinkQuery,
    ("post", "/v1/approvals/{id}/resolve"): SignedLinkQuery,
}
