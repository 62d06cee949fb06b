#!/usr/bin/env python3
"""Real clients against a real local cluster (`dspark up`): a Python gRPC
client generated from proto/ with grpcio-tools calls Generate and
GenerateStream, and the official `openai` client calls /v1/completions and
/v1/chat/completions with and without streaming. The chat completion text at
temperature 0 must equal `dspark generate --drafter none` on the same chat.
Skips (exit 0, "SKIP:") without the default model or the Python packages.

    .venv/bin/python tests/integration/python_clients_test.py --dspark build/bin/dspark
"""

import argparse
import pathlib
import subprocess
import sys
import tempfile

from cluster_util import MODEL, check, require_model, skip, start_cluster, stop_cluster

ROOT = pathlib.Path(__file__).resolve().parents[2]
QUESTION = "Name three primary colors."
MAX_TOKENS = 40


def grpc_checks(endpoints, work):
    import grpc
    from grpc_tools import protoc
    out = work / "py"
    out.mkdir()
    rc = protoc.main(["protoc", f"-I{ROOT / 'proto'}", f"--python_out={out}",
                      f"--grpc_python_out={out}", str(ROOT / "proto/dspark/v1/generation.proto")])
    check(rc == 0, "grpcio-tools generates the Python client from proto/")
    sys.path.insert(0, str(out))
    from dspark.v1 import generation_pb2 as pb, generation_pb2_grpc as pb_grpc

    stub = pb_grpc.GenerationStub(grpc.insecure_channel(endpoints["grpc"]))
    request = pb.GenerateRequest(
        chat=pb.Chat(messages=[pb.ChatMessage(role="user", content=QUESTION)]),
        stop=pb.StopCriteria(max_tokens=MAX_TOKENS))
    whole = stub.Generate(request, timeout=300)
    check(whole.text and whole.usage.completion_tokens > 0, "gRPC Generate returns text")
    deltas, finishes = [], 0
    for chunk in stub.GenerateStream(request, timeout=300):
        deltas.append(chunk.text_delta)
        finishes += chunk.finish_reason != pb.FINISH_REASON_UNSPECIFIED
    check("".join(deltas) == whole.text and finishes == 1,
          "gRPC GenerateStream deltas concatenate to Generate's text")
    models = stub.ListModels(pb.ListModelsRequest(), timeout=30)
    check(any(m.id == MODEL for m in models.models), "gRPC ListModels names the model")
    try:
        stub.Generate(pb.GenerateRequest(prompt=""), timeout=30)
        check(False, "empty prompt is rejected")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.INVALID_ARGUMENT, "empty prompt: INVALID_ARGUMENT")
    return whole.text


def openai_checks(endpoints):
    import openai
    client = openai.OpenAI(base_url=f"http://{endpoints['http']}/v1", api_key="unused")
    check(any(m.id == MODEL for m in client.models.list().data), "openai: models.list")

    completion = client.completions.create(model=MODEL, prompt="The capital of France is",
                                           max_tokens=MAX_TOKENS, temperature=0)
    text = completion.choices[0].text
    check(text and completion.usage.completion_tokens > 0, "openai: completions.create")
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=MODEL, prompt="The capital of France is", max_tokens=MAX_TOKENS, temperature=0,
        stream=True) if c.choices)
    check(streamed == text, "openai: streamed completion equals the whole one")

    messages = [{"role": "user", "content": QUESTION}]
    chat = client.chat.completions.create(model=MODEL, messages=messages,
                                          max_tokens=MAX_TOKENS, temperature=0)
    chat_text = chat.choices[0].message.content
    check(chat.choices[0].message.role == "assistant" and chat_text, "openai: chat.completions")
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=MAX_TOKENS, temperature=0, stream=True)
        if c.choices)
    check(streamed == chat_text, "openai: streamed chat equals the whole one")
    try:
        client.chat.completions.create(model=MODEL, messages=messages, temperature=-1)
        check(False, "temperature -1 is rejected")
    except openai.BadRequestError as e:
        check(e.status_code == 400 and "temperature" in str(e), "openai: bad input is HTTP 400")
    return chat_text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dspark", required=True)
    args = ap.parse_args()
    require_model()
    try:
        import grpc, grpc_tools, openai  # noqa: F401
    except ImportError as e:
        skip(f"Python package missing ({e}); run tools/setup.sh test")

    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        proc, endpoints = start_cluster(args.dspark, work)
        try:
            grpc_text = grpc_checks(endpoints, work)
            chat_text = openai_checks(endpoints)
        finally:
            code = stop_cluster(proc)
        check(code == 0, "dspark up stops cleanly on Ctrl-C")
        ref = subprocess.run([args.dspark, "generate", "--model", MODEL, "--chat", QUESTION,
                              "--max-tokens", str(MAX_TOKENS), "--drafter", "none"],
                             capture_output=True, text=True, check=True).stdout
        ref = ref[:-1] if ref.endswith("\n") else ref
        check(chat_text == ref, "openai chat text equals `dspark generate` at temperature 0")
        check(grpc_text == ref, "gRPC chat text equals `dspark generate` at temperature 0")
    print("PASS")


if __name__ == "__main__":
    main()
