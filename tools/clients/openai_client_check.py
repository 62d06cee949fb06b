#!/usr/bin/env python3
"""Calls a dspark router's OpenAI-compatible HTTP API with the official `openai`
Python client: completions and chat completions, each whole and streamed, at
temperature 0, and prints what came back as one JSON object:

  {"models": [...],
   "completion": {"text", "finish_reason", "usage"},
   "completion_stream": {"text", "finish_reason", "usage", "chunks"},
   "chat": {...}, "chat_stream": {...},
   "stream_matches": true}

Exits 1 when a streamed text differs from its whole counterpart (greedy
decoding must give the same text both ways), 2 on a client error.

  .venv/bin/python tools/clients/openai_client_check.py \
      --base-url http://127.0.0.1:8000/v1 --model smollm2-135m-instruct
"""
import argparse
import json
import sys

import openai


def collect(stream, chat):
    text, finish, usage, chunks = "", None, None, 0
    for chunk in stream:
        chunks += 1
        if chunk.usage is not None:
            usage = chunk.usage.model_dump()
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        text += (choice.delta.content or "") if chat else (choice.text or "")
        if choice.finish_reason is not None:
            finish = choice.finish_reason
    return {"text": text, "finish_reason": finish, "usage": usage, "chunks": chunks}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--model", required=True)
    parser.add_argument("--prompt", default="The capital of France is")
    parser.add_argument("--message", default="Name three primary colours.")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per request")
    args = parser.parse_args()

    client = openai.OpenAI(base_url=args.base_url, api_key="not-needed",
                           timeout=args.timeout, max_retries=0)
    common = {"model": args.model, "max_tokens": args.max_tokens, "temperature": 0}
    messages = [{"role": "user", "content": args.message}]
    out = {}
    try:
        out["models"] = [model.id for model in client.models.list()]

        whole = client.completions.create(prompt=args.prompt, **common)
        out["completion"] = {"text": whole.choices[0].text,
                             "finish_reason": whole.choices[0].finish_reason,
                             "usage": whole.usage.model_dump()}
        out["completion_stream"] = collect(
            client.completions.create(prompt=args.prompt, stream=True,
                                      stream_options={"include_usage": True}, **common),
            chat=False)

        whole = client.chat.completions.create(messages=messages, **common)
        out["chat"] = {"text": whole.choices[0].message.content,
                       "finish_reason": whole.choices[0].finish_reason,
                       "usage": whole.usage.model_dump()}
        out["chat_stream"] = collect(
            client.chat.completions.create(messages=messages, stream=True,
                                           stream_options={"include_usage": True}, **common),
            chat=True)
    except openai.OpenAIError as error:
        print(json.dumps({"error": f"{type(error).__name__}: {error}", **out}))
        return 2

    out["stream_matches"] = (out["completion_stream"]["text"] == out["completion"]["text"] and
                             out["chat_stream"]["text"] == out["chat"]["text"])
    print(json.dumps(out, ensure_ascii=False))
    return 0 if out["stream_matches"] else 1


if __name__ == "__main__":
    sys.exit(main())
