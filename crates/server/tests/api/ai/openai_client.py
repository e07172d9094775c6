"""OpenAI's official Python client against Barrack's /v1: models, a completion, a stream, and errors.

Prints one JSON line per step for the Rust test (crates/server/tests/api/ai.rs) to check against the
ledger and the usage history. Needs BARRACK_URL, BARRACK_API_KEY and BARRACK_MODEL.
"""

import json
import os

import openai

client = openai.OpenAI(
    base_url=os.environ["BARRACK_URL"] + "/v1",
    api_key=os.environ["BARRACK_API_KEY"],
    max_retries=0,
)
model = os.environ["BARRACK_MODEL"]
messages = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is a GPU?"},
]


def report(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


report("models", ids=[m.id for m in client.models.list().data])

reply = client.chat.completions.create(model=model, messages=messages, max_tokens=30)
report(
    "completion",
    id=reply.id,
    content=reply.choices[0].message.content,
    finish_reason=reply.choices[0].finish_reason,
    prompt_tokens=reply.usage.prompt_tokens,
    completion_tokens=reply.usage.completion_tokens,
)

content, usage, chunk_id = "", None, None
for chunk in client.chat.completions.create(
    model=model,
    messages=messages,
    max_tokens=30,
    stream=True,
    stream_options={"include_usage": True},
):
    chunk_id = chunk.id
    if chunk.choices and chunk.choices[0].delta.content:
        content += chunk.choices[0].delta.content
    if chunk.usage is not None:
        usage = chunk.usage
report(
    "stream",
    id=chunk_id,
    content=content,
    prompt_tokens=usage.prompt_tokens,
    completion_tokens=usage.completion_tokens,
)

try:
    client.chat.completions.create(model="no-such-model", messages=messages)
except openai.NotFoundError as e:
    report("unknown_model", status=e.status_code, message=e.message)

try:
    client.chat.completions.create(model=model, messages=[])
except openai.BadRequestError as e:
    report("empty_messages", status=e.status_code, param=e.body.get("param") if isinstance(e.body, dict) else None)
