"""Demonstration files: multi-turn conversations with tool calls, for supervised fine-tuning.

One JSON object per line:

    {"messages": [{"role": "system", "content": "..."},
                  {"role": "user", "content": "Compute 123456 * 654321 exactly. ..."},
                  {"role": "assistant", "content": "",
                   "tool_calls": [{"type": "function", "function": {"name": "python",
                                                                   "arguments": {"code": "123456 * 654321"}}}]},
                  {"role": "tool", "name": "python", "content": "80779853376"},
                  {"role": "assistant", "content": "Answer: 80779853376"}],
     "tools": ["python"]}

`messages` is a chat conversation in the OpenAI / `apply_chat_template` format. Assistant turns
are what the model learns to write; everything else (system, user, tool results) is context.
An assistant message's `tool_calls` become the text the model writes to call a tool
(`<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, the format `envs.tools` parses),
after its `content`. `tools` (optional) names built-in tools (`envs.BUILTIN_TOOLS`) or gives
JSON schemas; the chat template receives them, as it does when the sampler runs the environment.

A bad row is a `RecordError` naming the file, the line and the field. Rendering to token ids
(through the sampler's renderer) is `algorithms.trajectory_sft.demonstration_examples`; this
layer imports no tokenizer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from reasonloop.envs.base import Message
from reasonloop.store.jsonl import RecordError, iter_jsonl

ROLES = ("system", "user", "assistant", "tool")


@dataclass
class Demonstration:
    messages: list[Message]
    tools: list[dict] = field(default_factory=list)
    """JSON schemas of the tools the conversation offers (passed to the chat template)"""
    where: str = ""
    """file:line, for messages about this row"""


def call_text(name: str, arguments: dict) -> str:
    """The text a model writes to call a tool (the Qwen/Hermes format `envs.tools.parse_tool_calls` reads).

    >>> call_text("calculator", {"expression": "2*3"})
    '<tool_call>{"name": "calculator", "arguments": {"expression": "2*3"}}</tool_call>'
    """
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


def assistant_text(message: Message) -> str:
    """What the model writes for an assistant message: its content, then its tool calls as text."""
    parts = [message.get("content") or ""]
    for call in message.get("tool_calls") or []:
        fn = call.get("function", call)
        parts.append(call_text(fn["name"], fn["arguments"]))
    return "\n".join(p for p in parts if p)


def _check_call(call, where: str) -> dict:
    if not isinstance(call, dict):
        raise RecordError(f"{where}: must be an object, got {type(call).__name__}")
    fn = call.get("function", call)
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
        raise RecordError(f"{where}: needs a function name (\"function\": {{\"name\": ...}})")
    arguments = fn.get("arguments", {})
    if isinstance(arguments, str):  # the OpenAI API sends arguments as a JSON string
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError as e:
            raise RecordError(f"{where}.arguments: not JSON ({e.msg})") from None
    if not isinstance(arguments, dict):
        raise RecordError(f"{where}.arguments: must be an object, got {type(arguments).__name__}")
    return {"type": "function", "function": {"name": fn["name"], "arguments": arguments}}


def _check_message(m, where: str) -> Message:
    if not isinstance(m, dict):
        raise RecordError(f"{where}: must be an object, got {type(m).__name__}")
    role = m.get("role")
    if role not in ROLES:
        raise RecordError(f"{where}.role: must be one of {list(ROLES)}, got {role!r}")
    content = m.get("content")
    if content is not None and not isinstance(content, str):
        raise RecordError(f"{where}.content: must be a string, got {type(content).__name__}")
    out: Message = {"role": role, "content": content or ""}
    calls = m.get("tool_calls")
    if calls is not None:
        if role != "assistant" or not isinstance(calls, list):
            raise RecordError(f"{where}.tool_calls: only an assistant message has tool_calls, as a list")
        out["tool_calls"] = [_check_call(c, f"{where}.tool_calls[{k}]") for k, c in enumerate(calls)]
    elif content is None:
        raise RecordError(f"{where}.content: missing")
    if role == "assistant" and not assistant_text(out):
        raise RecordError(f"{where}: an assistant message with no content and no tool_calls")
    if role == "tool" and isinstance(m.get("name"), str):
        out["name"] = m["name"]
    return out


def _check_tools(tools, where: str) -> list[dict]:
    from reasonloop.envs import BUILTIN_TOOLS

    if not isinstance(tools, list):
        raise RecordError(f"{where}: must be a list of tool names or JSON schemas")
    schemas = []
    for k, t in enumerate(tools):
        if isinstance(t, str):
            if t not in BUILTIN_TOOLS:
                raise RecordError(f"{where}[{k}]: unknown tool {t!r}; built-in tools: {sorted(BUILTIN_TOOLS)}")
            schemas.append(BUILTIN_TOOLS[t]().schema)
        elif isinstance(t, dict) and isinstance(t.get("function", {}).get("name"), str):
            schemas.append(t)
        else:
            raise RecordError(f"{where}[{k}]: a tool is a built-in name or a schema {{\"function\": {{\"name\": ...}}}}")
    return schemas


def parse_demonstration(row: dict, where: str) -> Demonstration:
    """One row -> a `Demonstration`, or a RecordError naming `where` and the field."""
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RecordError(f"{where}: field 'messages' must be a non-empty list of chat messages")
    unknown = sorted(set(row) - {"messages", "tools"})
    if unknown:
        raise RecordError(f"{where}: unknown field(s) {unknown}; a demonstration row has 'messages' and 'tools'")
    checked = [_check_message(m, f"{where}: messages[{i}]") for i, m in enumerate(messages)]
    roles = [m["role"] for m in checked]
    if "assistant" not in roles:
        raise RecordError(f"{where}: messages: no assistant message to learn from")
    if roles[0] == "assistant":
        raise RecordError(f"{where}: messages[0]: the conversation must open with a system or user message")
    if roles[-1] != "assistant":
        raise RecordError(f"{where}: messages[{len(roles) - 1}]: the conversation must end with an assistant turn")
    return Demonstration(checked, _check_tools(row.get("tools", []), f"{where}: tools"), where)


def load_demonstrations(path: str | Path) -> list[Demonstration]:
    """Every row of a demonstration file; errors name the file, line and field."""
    demos = [parse_demonstration(row, f"{path}:{line}") for line, row in iter_jsonl(path)]
    if not demos:
        raise RecordError(f"{path}: no demonstrations (the file is empty)")
    return demos


def is_demonstration_file(path: str | Path) -> bool:
    """Does the file's first row have `messages` (a demonstration file, not (prompt, completion) pairs)?"""
    for _, row in iter_jsonl(path):
        return "messages" in row
    return False
