"""Slack's interactivity request: a form body whose ``payload`` field is a JSON document. The form is the
REST contract (in the OpenAPI document); the payload's parts the gateway reads are models too, so the
route reads attributes rather than probing dicts. Slack signs every request, so a payload of another shape
is a 400 naming the part, never a guess."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gateway.models.base import Query


class SlackInteraction(BaseModel):
    """The form body (``application/x-www-form-urlencoded``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    payload: str = Field(
        description=(
            "Slack's interaction payload, JSON: type block_actions (actions[0].action_id approve, deny, open_form "
            "or deny_with_reason, its value the approval id; user.id; response_url; trigger_id) or "
            "view_submission (view.callback_id airlock_form or airlock_reason, view.private_metadata the approval "
            "id, view.state.values the inputs by block id)."
        )
    )


class _Part(BaseModel):
    """A part of Slack's payload: the fields the gateway reads, Slack's others ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class SlackUser(_Part):
    id: str | None = None


class SlackAction(_Part):
    action_id: str | None = None
    value: str | None = None


class SlackView(_Part):
    callback_id: str | None = None
    private_metadata: str | None = None
    state: dict[str, Any] | None = None


class SlackPayload(_Part):
    type: str
    user: SlackUser | None = None
    actions: list[SlackAction] = Field(default_factory=list)
    response_url: str | None = None
    trigger_id: str | None = None
    view: SlackView | None = None

    @property
    def user_id(self) -> str | None:
        return self.user.id if self.user is not None and self.user.id else None

    @property
    def action(self) -> SlackAction:
        return self.actions[0] if self.actions else SlackAction()


MODELS = (SlackInteraction,)
QUERIES: dict[tuple[str, str], type[Query]] = {}
