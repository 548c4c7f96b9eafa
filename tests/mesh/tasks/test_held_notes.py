"""A message to a held task that does not resolve it is kept in history — with the form's secrets masked."""

from __future__ import annotations

from tests.conftest import GUIDE_POLICY, Airlock, bearer, guide_message

OTP = "s3cret-otp-4471"


async def test_a_refused_answer_keeps_no_password_in_clear(airlock: Airlock) -> None:
    policy = {
        **GUIDE_POLICY,
        "evaluator": {
            "plugin": "bulk_operation",
            "config": {"threshold": 10, "fields": [{"id": "otp", "type": "password", "label": "One-time code"}]},
        },
    }
    await airlock.add_policy(policy)
    agent = bearer("bot", "agent")
    task = await airlock.hold(headers=agent)
    follow = guide_message(taskId=task["id"], contextId=task["contextId"])
    follow["params"]["message"]["parts"] = [{"kind": "data", "data": {"decision": "approve", "otp": OTP}}]
    reply = await airlock.rpc(follow, agent)  # the agent that caused the hold: refused, and nothing is kept
    assert reply["error"]["data"]["status"] == 403, reply
    values = guide_message(taskId=task["id"], contextId=task["contextId"])
    values["params"]["message"]["parts"] = [{"kind": "data", "data": {"otp": OTP}}]
    noted_reply = await airlock.rpc(values, agent)  # values without a decision: a note, kept masked
    assert noted_reply["result"]["status"]["state"] == "input-required", noted_reply

    history = await airlock.mesh.store.get_history(task["id"])
    noted = history[-1]["parts"][0]["data"]
    assert set(noted) == {"otp"} and noted["otp"] != OTP
    assert OTP not in str(history)
    assert not any("decision" in (p.get("data") or {}) for m in history[:-1] for p in m["parts"] if m["role"] == "user")
