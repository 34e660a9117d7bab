"""Runs inside the fake-telegram container (stdlib only; fed on stdin by compose_smoke.sh).

One private message goes in through the fake Bot API's control API; the bot must stream the
answer and deliver it as a final sendMessage. Then the bot's /metrics must show it.
"""

import json
import sys
import time
import urllib.request
from collections.abc import Callable
from typing import Any

TELEGRAM = "http://127.0.0.1:8081"
METRICS = "http://bot:8080/metrics"
USER = 1001
QUESTION = "Hello from the compose smoke test"
EXPECTED = f"You said: {QUESTION}"  # the fake LLM echoes (docker-compose.ci.yml)


def call(url: str, body: object = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        raw = response.read().decode()
    return json.loads(raw) if raw.startswith(("{", "[")) else raw


def until(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            sys.exit(f"smoke: FAILED waiting for {what}")
        time.sleep(0.2)


call(f"{TELEGRAM}/_fake/private_text", {"user_id": USER, "text": QUESTION})


def final_sends() -> list[Any]:
    calls = call(f"{TELEGRAM}/_fake/calls")
    return [c for c in calls if c["method"] == "sendMessage" and c["ok"]]


sends = until("the final sendMessage", final_sends)
calls = call(f"{TELEGRAM}/_fake/calls")
drafts = [c for c in calls if c["method"] == "sendMessageDraft" and c["ok"]]
shown = [c["params"].get("text", "") for c in drafts if c["params"].get("text")]
print(f"smoke: {len(shown)} draft frame(s) with text, then sendMessage "
      f"{sends[-1]['params']['text']!r}")
if len(sends) != 1 or sends[0]["params"]["text"] != EXPECTED:
    sys.exit(f"smoke: FAILED: expected one sendMessage {EXPECTED!r}, got {sends}")
if not shown or not all(EXPECTED.startswith(text) for text in shown):
    sys.exit(f"smoke: FAILED: expected growing draft frames before the message, got {shown}")


def finished_page() -> str:
    page = str(call(METRICS))
    return page if "llmbot_answers_finished_total 1.0" in page else ""


page = until("answers_finished 1 in /metrics", finished_page, timeout=10)
print("smoke: /metrics (llmbot_ samples):")
for line in page.splitlines():
    name = line.split("{")[0].split(" ")[0]
    if name.startswith("llmbot_") and not name.endswith("_created") and "_bucket" not in name:
        print("  " + line)
print("smoke: OK")
