"""The admin API's bodies, queries and answers: policies, plugins, channels, channel types, downstream agents
and the outbox (``/internal/...``).

What a schema can say is said here and checked by ``parse`` before the mesh is called; what needs the mesh
stays there: a policy's channels must exist and its plugin checks its own config, a channel's config is
checked against its type's JSON Schema (owned by the type, copied into the document from it), an agent's URL
must serve a card. The built-in plugin names and the channel types' config schemas are read from the mesh,
so the document cannot fall behind them.

Listings are paged: ``limit`` (1 to ``MAX_LIMIT``) and an opaque ``cursor``, the ``next_cursor`` of the page
before (null at the end). A cursor is the base64url of where the last page ended; the mesh pages by name,
which is unique in each listing, so a walk neither repeats nor skips an item."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    StrictBool,
    StrictStr,
    WithJsonSchema,
)

from a2ui import WHITESPACE
from gateway.errors import MAX_ID
from gateway.models.base import Answer, Body, Integer, Query, QueryInt
from mesh.admin.agents import NAME_MAX_LENGTH as AGENT_NAME_MAX_LENGTH
from mesh.admin.agents import NAME_RE as AGENT_NAME_RE
from mesh.admin.dryrun import DEFAULT_LIMIT as DRY_RUN_DEFAULT
from mesh.admin.dryrun import MAX_EXAMPLES as DRY_RUN_EXAMPLES
from mesh.admin.dryrun import MAX_LIMIT as DRY_RUN_MAX
from mesh.admin.dryrun import parse_since
from mesh.admin.outbox import MAX_LIMIT as OUTBOX_MAX_LIMIT
from mesh.core.config import MAX_TIMEOUT_S
from mesh.delivery.channels.base import EVENTS
from mesh.delivery.channels.email import EmailChannel
from mesh.delivery.channels.slack import SlackChannel
from mesh.delivery.channels.webhook import WebhookChannel
from mesh.policy import parse_duration
from mesh.policy.builtin_plugins import BUILTIN_PLUGINS
from mesh.policy.model import APPROVALS_REQUIRED_MAX, PRIORITY_MAX, PRIORITY_MIN
from mesh.policy.model import NAME_MAX_LENGTH as POLICY_NAME_MAX_LENGTH

PAGE_DEFAULT = 100
MAX_LIMIT = 500
"""The largest page of any admin listing (and of the audit trail)."""
CURSOR_MAX_LENGTH = 600  # the base64url of the longest key a listing pages by, with room to spare

PLUGIN_NAMES = sorted(p.name for p in BUILTIN_PLUGINS)
CHANNEL_TYPES = sorted((WebhookChannel, EmailChannel, SlackChannel), key=lambda t: t.name)
CHANNEL_TYPE_NAMES = [t.name for t in CHANNEL_TYPES]

POLICY_NAME_PATTERN = r"^[A-Za-z0-9_.:-]+$"
ENFORCEMENT_PATTERN = (
    f"^[{WHITESPACE}]*("
    "[Aa][Ll][Ll][Oo][Ww]|[Bb][Ll][Oo][Cc][Kk]|[Rr][Ee][Qq][Uu][Ii][Rr][Ee]_[Aa][Pp][Pp][Rr][Oo][Vv][Aa][Ll]"
    f"|[Aa][Uu][Dd][Ii][Tt]|[Dd][Ee][Nn][Yy]|[Aa][Ss][Kk])[{WHITESPACE}]*$"
)
DURATION_PATTERN = (
    f"^[{WHITESPACE}]*(0*[1-9][0-9]*|([0-9]+[SsMmHhDd])*0*[1-9][0-9]*[SsMmHhDd]([0-9]+[SsMmHhDd])*)[{WHITESPACE}]*$"
)
AGENT_URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://([A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?(/|$)"  # IPv6 in []

ENFORCEMENT_HELP = (
    "allow, block, require_approval or audit; the aliases deny (block) and ask (require_approval) are accepted, "
    "case-insensitively."
)
TIMEOUT_HELP = (
    "Positive seconds: an integer, a string of digits, or a unit string such as '90s', '15m', '2h', '1d' or "
    "'1h30m'. null means the server default."
)
DISTINCT_HELP = (
    "Separation of duties: nobody, person or agent, resolves a hold their own message caused (an agent never "
    "resolves its own hold either way)."
)

JsonObject = Annotated[dict[str, Any], WithJsonSchema({"type": "object"})]
Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
NullableTimestamp = Annotated[str | None, WithJsonSchema({"type": ["string", "null"], "format": "date-time"})]
NonEmpty = Annotated[StrictStr, Field(min_length=1)]
NullableString = Annotated[str | None, WithJsonSchema({"type": ["string", "null"]})]


# ------------------------------------------------------------------------------------------------ paging


def encode_cursor(key: str) -> str:
    """The opaque cursor a client passes back to read the page after ``key``."""
    return base64.urlsafe_b64encode(key.encode()).rstrip(b"=").decode()


def _cursor(value: str) -> str:
    """The key a cursor carries; one the server did not give is refused (400 naming ``cursor``), and so is
    a NUL, which no database takes in text."""
    try:
        key = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, ValueError):
        raise ValueError("not a cursor this server gave") from None
    if not key or "\x00" in key:
        raise ValueError("not a cursor this server gave")
    return key


Cursor = Annotated[
    str, Field(min_length=1, max_length=CURSOR_MAX_LENGTH, pattern="^[A-Za-z0-9_-]+$"), AfterValidator(_cursor)
]
NextCursor = Annotated[
    str | None,
    WithJsonSchema(
        {"type": ["string", "null"], "description": "Pass as cursor= for the next page; null when there is none."}
    ),
]


class PageQuery(Query):
    """A page of an admin listing (policies, channels, agents): the first without a cursor."""

    limit: QueryInt = Field(PAGE_DEFAULT, ge=1, le=MAX_LIMIT, description=f"Page size, at most {MAX_LIMIT}.")
    # the default is not validated: left out, the first page
    cursor: Cursor = Field(
        None, description="The next_cursor of the page before; left out, the first page. Opaque: only pass one back."
    )


# ------------------------------------------------------------------------------------------------ policies


QUORUM_HELP = "Approvals from distinct signed-in people a hold needs, none of them the requester; one deny ends it."
ESCALATE_AFTER_HELP = (
    "A hold still pending this long (the forms timeout takes; shorter than the timeout) is sent once to "
    "escalate_to. null: no escalation."
)
ESCALATE_TO_HELP = "Names of existing channels an escalated hold is sent to; required with escalate_after."
EDITS_HELP = "An approver may change a held tool call's arguments; the edited call is judged by the policies again."


def _timeout(value: Any) -> Any:
    """A policy's timeout as the mesh reads it (``parse_duration``), within the server's ten-year bound; JSON's
    ``900.0`` is the integer 900."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be positive seconds: an integer or a string such as '15m'")
    seconds = parse_duration(value)  # its ValueError says what is wrong
    if seconds > MAX_TIMEOUT_S:
        raise ValueError(f"must be at most {MAX_TIMEOUT_S} seconds (10 years)")
    return value


Timeout = Annotated[
    Any,
    AfterValidator(_timeout),
    WithJsonSchema(
        {
            "oneOf": [
                {"type": "integer", "minimum": 1, "maximum": MAX_TIMEOUT_S},
                {"type": "string", "pattern": DURATION_PATTERN},
                {"type": "null"},
            ]
        }
    ),
]
PluginName = Annotated[
    StrictStr,
    Field(min_length=1),
    # installed plugins add their own names, so the mesh, not the schema, refuses an unknown one
    WithJsonSchema({"type": "string", "minLength": 1, "enum": PLUGIN_NAMES}),
]
PluginConfig = Annotated[dict[str, Any] | None, WithJsonSchema({"type": ["object", "null"]})]
ScopeType = Literal["tool", "message", "agent"]
Enforcement = Annotated[
    StrictStr, Field(pattern=ENFORCEMENT_PATTERN, description=ENFORCEMENT_HELP, examples=["require_approval"])
]
PolicyName = Annotated[StrictStr, Field(min_length=1, max_length=POLICY_NAME_MAX_LENGTH, pattern=POLICY_NAME_PATTERN)]


class Evaluator(Body):
    model_config = ConfigDict(extra="forbid")

    plugin: PluginName = Field(
        description=(
            "A name from GET /internal/plugins (the built-in ones are listed; an installed plugin adds its own)."
        )
    )
    config: PluginConfig = Field(
        None, description="Checked against the plugin's config_schema (see GET /internal/plugins)."
    )


class EvaluatorUpdate(Body):
    """Only config: the plugin is kept; a new plugin: its config starts from {}."""

    model_config = ConfigDict(extra="forbid")

    plugin: PluginName = None  # left out, the policy's plugin (null is refused)
    config: PluginConfig = None


class PolicyCreate(Body):
    model_config = ConfigDict(
        extra="forbid",
        # escalation names when and where together (the server also wants escalate_after under the timeout)
        json_schema_extra={"dependentRequired": {"escalate_after": ["escalate_to"], "escalate_to": ["escalate_after"]}},
    )

    name: PolicyName
    description: NullableString = None
    scope_type: ScopeType
    enforcement: Enforcement
    evaluator: Evaluator
    priority: Integer = Field(100, ge=PRIORITY_MIN, le=PRIORITY_MAX)
    channels: list[NonEmpty] = Field(default_factory=list, description="Names of existing channels.")
    enabled: StrictBool = True
    agents: list[NonEmpty] = Field(default_factory=list, description="Required (non-empty) when scope_type is agent.")
    timeout: Timeout = Field(None, description=TIMEOUT_HELP)
    distinct_approver: StrictBool = Field(False, description=DISTINCT_HELP)
    approvals_required: Integer = Field(1, ge=1, le=APPROVALS_REQUIRED_MAX, description=QUORUM_HELP)
    escalate_after: Timeout = Field(None, description=ESCALATE_AFTER_HELP)
    escalate_to: list[NonEmpty] = Field(default_factory=list, description=ESCALATE_TO_HELP)
    allow_edits: StrictBool = Field(False, description=EDITS_HELP)


class PolicyUpdate(Body):
    """Fields left out keep their value; the routes pass on only those given."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "description": (
                "policy_id plus any create field but name. An evaluator with only config keeps the plugin; a new "
                "plugin resets config to {}."
            )
        },
    )

    policy_id: NonEmpty
    # the defaults below are not validated: left out, unchanged; null is refused where the type has none
    description: NullableString = None
    scope_type: ScopeType = None
    enforcement: Enforcement = None
    evaluator: EvaluatorUpdate = None
    priority: Integer = Field(None, ge=PRIORITY_MIN, le=PRIORITY_MAX)
    channels: list[NonEmpty] = None
    enabled: StrictBool = None
    agents: list[NonEmpty] = None
    timeout: Timeout = Field(None, description=TIMEOUT_HELP)
    distinct_approver: StrictBool = Field(None, description=DISTINCT_HELP)
    approvals_required: Integer = Field(None, ge=1, le=APPROVALS_REQUIRED_MAX, description=QUORUM_HELP)
    escalate_after: Timeout = Field(None, description=ESCALATE_AFTER_HELP)
    escalate_to: list[NonEmpty] = Field(None, description=ESCALATE_TO_HELP)
    allow_edits: StrictBool = Field(None, description=EDITS_HELP)
    dry_run: StrictBool = Field(
        None,
        description=(
            "true: nothing is saved; the answer is a PolicyDryRunResult, the change judged against the tenant's "
            f"last {DRY_RUN_DEFAULT} recorded decisions (see POST /internal/policies/dry-run)."
        ),
    )


SINCE_HELP = (
    "Only decisions made since then: an RFC 3339 date-time, or a duration back from now ('24h', '7d', '90m', or "
    "seconds)."
)


def _since(value: str) -> str:
    """Checked as the mesh reads it (relative to any instant: only its spelling is checked here)."""
    parse_since(value, 0.0)
    return value


Since = Annotated[
    StrictStr,
    Field(max_length=64),
    AfterValidator(_since),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": 64,
            "anyOf": [{"pattern": DURATION_PATTERN}, {"format": "date-time"}],
            "description": SINCE_HELP,
        }
    ),
]


class PolicyDryRun(Body):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "description": (
                "A policy body judged against the tenant's recorded decisions, newest first, with the policy set "
                "as it would be; nothing is saved."
            )
        },
    )

    policy: PolicyCreate = Field(description="A create body, checked as POST /internal/policies/new checks it.")
    replaces: PolicyName = Field(
        None, description="The policy the body takes the place of (it may keep its name); left out, it is added."
    )
    since: Since = None
    limit: Integer = Field(
        DRY_RUN_DEFAULT, ge=1, le=DRY_RUN_MAX, description=f"The last this many decisions, at most {DRY_RUN_MAX}."
    )


class PolicyDelete(Body):
    policy_id: NonEmpty


class PolicyEvaluator(Answer):
    plugin: str
    config: JsonObject


class Policy(Answer):
    policy_id: str = Field(description="Equal to name.")
    name: PolicyName
    description: str
    scope_type: ScopeType
    enforcement: Literal["allow", "block", "require_approval", "audit"]
    evaluator: PolicyEvaluator
    priority: Integer = Field(ge=PRIORITY_MIN, le=PRIORITY_MAX)
    channels: list[str]
    enabled: bool
    agents: list[str]
    timeout: Integer | None = Field(description="Seconds; null is the server default.")
    distinct_approver: bool = Field(description=DISTINCT_HELP)
    approvals_required: Integer = Field(ge=1, le=APPROVALS_REQUIRED_MAX, description=QUORUM_HELP)
    escalate_after: Integer | None = Field(description="Seconds; null: no escalation.")
    escalate_to: list[str] = Field(description=ESCALATE_TO_HELP)
    allow_edits: bool = Field(description=EDITS_HELP)
    tenant_id: str
    created_at: NullableTimestamp
    updated_at: NullableTimestamp


Verdict = Literal["allow", "block", "require_approval"]


class DryRunExample(Answer):
    """One recorded call whose verdict the change alters."""

    task_id: str
    at: Timestamp
    tool: str | None
    agent: str | None
    arguments: JsonObject = Field(description="As kept: values a form marks sensitive (passwords always) masked.")
    recorded: Verdict = Field(description="What was decided when the call was made.")
    before: Verdict = Field(description="What the current policy set decides.")
    after: Verdict = Field(description="What the set decides with the change.")
    policy: str | None = Field(description="The policy that decides after the change; null: none matched.")
    policy_before: str | None = Field(description="The policy that decides now; null: none matched.")
    reason: str = Field(description="Why, after the change.")


TRANSITION_PATTERN = "^(allow|block|require_approval)→(allow|block|require_approval)$"


class PolicyDryRunResult(Answer):
    dry_run: Literal[True]
    policy: Policy = Field(description="The policy as it would be saved.")
    replaces: str | None
    since: NullableTimestamp
    limit: Integer = Field(ge=1, le=DRY_RUN_MAX)
    evaluated: Integer = Field(ge=0, description="Recorded decisions judged (fewer than limit when fewer are kept).")
    changed: Integer = Field(ge=0, description="Of those, how many the change decides otherwise.")
    transitions: Annotated[
        dict[str, Integer],
        WithJsonSchema(
            {
                "type": "object",
                "propertyNames": {"pattern": TRANSITION_PATTERN},
                "additionalProperties": {"type": "integer", "minimum": 1},
            }
        ),
    ] = Field(description="before→after: how many calls, for each change of verdict.")
    differs_from_recorded: Integer = Field(
        ge=0, description="How many the current set decides otherwise than was recorded (policies changed since)."
    )
    examples: list[DryRunExample] = Field(
        max_length=DRY_RUN_EXAMPLES, description=f"The newest changed calls, at most {DRY_RUN_EXAMPLES}."
    )


class PolicyList(Answer):
    policies: list[Policy]
    next_cursor: NextCursor


class PolicyDeleted(Answer):
    ok: Literal[True]
    policy_id: str


class Plugin(Answer):
    name: str
    description: str
    config_schema: JsonObject = Field(description="JSON Schema of the plugin's evaluator.config.")


class PluginList(Answer):
    plugins: list[Plugin]


# ------------------------------------------------------------------------------------------------ channels


def _events(value: Any) -> Any:
    """One check for the whole list, so a bad event names ``events`` (not ``events.0``)."""
    if not isinstance(value, list) or not value or not all(isinstance(e, str) and e in EVENTS for e in value):
        raise ValueError(f"must be a non-empty list of: {', '.join(EVENTS)}")
    return value


EVENTS_SCHEMA: dict[str, Any] = {"type": "array", "minItems": 1, "items": {"type": "string", "enum": list(EVENTS)}}
Events = Annotated[list[str], BeforeValidator(_events), WithJsonSchema(EVENTS_SCHEMA)]
NullableEvents = Annotated[
    list[str] | None,
    BeforeValidator(lambda v: None if v is None else _events(v)),
    WithJsonSchema({"oneOf": [EVENTS_SCHEMA, {"type": "null"}]}),
]
ChannelTypeName = Annotated[StrictStr, WithJsonSchema({"type": "string", "enum": CHANNEL_TYPE_NAMES})]


def _config_branches() -> list[dict[str, Any]]:
    """One branch per channel type: its name and its config schema, as the type defines it."""
    return [
        {"type": "object", "properties": {"type": {"const": t.name}, "config": t.config_schema}} for t in CHANNEL_TYPES
    ]


def _known_type(value: str) -> str:
    if value not in CHANNEL_TYPE_NAMES:
        raise ValueError(f"must be one of: {', '.join(CHANNEL_TYPE_NAMES)}")
    return value


class ChannelCreate(Body):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"oneOf": _config_branches()})

    name: Annotated[StrictStr, Field(min_length=1, max_length=100)]
    type: Annotated[ChannelTypeName, AfterValidator(_known_type)]
    config: JsonObject = Field(
        description=(
            "Checked against the type's JSON Schema, served by GET /internal/channel-types. Secret values are sealed "
            "at rest and masked in every answer; a webhook created without a secret gets one, shown once in this "
            "answer."
        )
    )
    events: Events = Field(
        None, description="The events the channel takes (default: all); a repeated event counts once."
    )


class ChannelUpdate(Body):
    model_config = ConfigDict(extra="forbid")

    name: NonEmpty
    config: JsonObject = Field(
        None,
        description=(
            "Merged into the channel's config: a key given replaces, a key given as null is removed, a key left out "
            "is kept."
        ),
    )
    events: NullableEvents = Field(
        None, description="Replaces the events the channel takes (null: all); a repeated event counts once."
    )


class ChannelDelete(Body):
    name: NonEmpty


class Channel(Answer):
    name: str
    type: str
    config: JsonObject
    tenant_id: str
    created_at: Timestamp = Field(description="UTC, ISO 8601 with milliseconds and Z.")
    events: Annotated[
        list[str] | None,
        WithJsonSchema({"oneOf": [{**EVENTS_SCHEMA, "uniqueItems": True}, {"type": "null"}]}),
    ] = Field(description="The events the channel takes; null: all.")


class ChannelList(Answer):
    channels: list[Channel]
    next_cursor: NextCursor


class ChannelDeleted(Answer):
    ok: Literal[True]
    name: str


class ChannelType(Answer):
    type: Annotated[str, WithJsonSchema({"type": "string", "enum": CHANNEL_TYPE_NAMES})]
    config_schema: JsonObject = Field(description="JSON Schema of the type's config.")
    secrets: list[str] = Field(description="Config keys sealed at rest and masked in every answer.")
    events: list[Annotated[str, WithJsonSchema({"type": "string", "enum": list(EVENTS)})]]


class ChannelTypeList(Answer):
    types: list[ChannelType]


# ------------------------------------------------------------------------------------------------ agents


class AgentCreate(Body):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[
        StrictStr, Field(min_length=1, max_length=AGENT_NAME_MAX_LENGTH, pattern=f"^{AGENT_NAME_RE.pattern}$")
    ]
    url: Annotated[StrictStr, Field(max_length=2048, pattern=AGENT_URL_PATTERN)] = Field(
        description="The agent's base URL (its card is fetched from /.well-known/agent-card.json) or its card's URL."
    )


class AgentDelete(Body):
    name: NonEmpty


class LocalAgent(Answer):
    """An in-process agent: listed, never added or deleted here."""

    name: str
    kind: Literal["local"]
    description: str
    skills: list[JsonObject]
    default: bool = Field(description="Messages that name no agent go to it.")


class RemoteAgent(Answer):
    """A downstream A2A agent, with the card it served when it was added."""

    name: str
    kind: Literal["remote"]
    url: str
    card: JsonObject
    skills: list[JsonObject] = Field(description="Empty when this server cannot use the stored card.")
    created_at: Timestamp


class Agent(RootModel[Annotated[LocalAgent | RemoteAgent, Field(discriminator="kind")]]):
    model_config = ConfigDict(frozen=True)


class AgentList(Answer):
    agents: list[Agent]
    next_cursor: NextCursor


class AgentDeleted(Answer):
    ok: Literal[True]
    name: str


# ------------------------------------------------------------------------------------------------ outbox


class OutboxQuery(Query):
    state: Literal["pending", "dead", "delivered"] = "pending"
    after: QueryInt = Field(0, ge=0, le=MAX_ID, description="Entries after this id.")
    limit: QueryInt = Field(PAGE_DEFAULT, ge=1, le=OUTBOX_MAX_LIMIT, description=f"Page size, at most {MAX_LIMIT}.")


class OutboxEntry(Answer):
    id: Integer
    kind: str
    attempts: Integer = Field(ge=0)
    last_error: NullableString
    created_at: Timestamp
    next_attempt_at: NullableTimestamp
    delivered_at: NullableTimestamp
    dead_at: NullableTimestamp


class OutboxPage(Answer):
    entries: list[OutboxEntry]
    next_after: Integer = Field(None, description="Pass as after= for the next page; left out when there is none.")


class OutboxRetried(Answer):
    ok: Literal[True]
    id: Integer = Field(ge=1)


MODELS = (
    Evaluator,
    PolicyCreate,
    PolicyUpdate,
    PolicyDryRun,
    PolicyDelete,
    Policy,
    PolicyDryRunResult,
    PolicyList,
    PolicyDeleted,
    Plugin,
    PluginList,
    ChannelCreate,
    ChannelUpdate,
    ChannelDelete,
    Channel,
    ChannelList,
    ChannelDeleted,
    ChannelType,
    ChannelTypeList,
    AgentCreate,
    AgentDelete,
    Agent,
    AgentList,
    AgentDeleted,
    OutboxEntry,
    OutboxPage,
    OutboxRetried,
)
QUERIES: dict[tuple[str, str], type[Query]] = {
    ("get", "/internal/policies"): PageQuery,
    ("get", "/internal/channels"): PageQuery,
    ("get", "/internal/agents"): PageQuery,
    ("get", "/internal/outbox"): OutboxQuery,
}
