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
    reply = await airlock.rpc(follow, agent)  # the agent that caused the hold: a note, not a resolution
    assert reply["result"]["status"]["state"] == "input-required", reply

    history = await airlock.mesh.store.get_history(task["id"])
    noted = history[-1]["parts"][0]["data"]
    assert noted["decision"] == "approve" and noted["otp"] != OTP
    assert OTP not in str(history)
