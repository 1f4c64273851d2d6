"""Tools a model can call, and parsing the calls out of its text.

    tools = {t.name: t for t in (calculator_tool(), PythonTool().as_tool())}
    calls, errors = parse_tool_calls(text, python_blocks=True)
    result = run_call(tools, calls[0])          # ToolResult(content, error kind or None)

A user's tool is a plain function with type hints and a Google-style docstring:
`reasonloop.rollout.multiturn.tool_from_function` builds its `Tool`, with the JSON schema
from `transformers.utils.get_json_schema` (the schema chat templates expect; it lives in the
rollout layer because this layer imports no transformers).

Call formats parsed (`parse_tool_calls`):
- Qwen/Hermes: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` (any number);
- fenced ```python blocks, as calls of the `python` tool (with `python_blocks=True`).
A call whose JSON does not parse, has no name, or whose arguments are not an object is an
error the model is told about (`ToolCallError`), never an exception.

Built-in tools:
- `calculator`: arithmetic on exact integers and floats through an AST walk (no `eval`):
  + - * / // % **, unary signs, parentheses and a few functions; exponents and results are
  bounded, so `9**9**9` is an error, not a hang.
- `python` (`PythonTool`): a Python interpreter in the code sandbox
  (`reasonloop.verify.code.run_python`, with its time, memory and process limits). State
  persists across the calls of one trajectory by re-running the earlier successful cells
  (their output discarded) before the new one; a failing cell is not kept. Re-running costs
  the earlier cells' time again and repeats their side effects (randomness is redrawn): fine
  for the short computations tools are for. Like a notebook, a cell's last expression is
  printed.
"""

from __future__ import annotations

import ast
import inspect
import json
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass
class ToolCallError:
    kind: str
    """"malformed_tool_call" (the text could not be read as a call)"""
    message: str


@dataclass
class ToolResult:
    content: str
    error: str | None = None
    """None, or the kind counted in the trajectory: unknown_tool, bad_arguments, tool_error, tool_timeout"""


@dataclass
class Tool:
    """A callable the model may call: `fn(**arguments) -> str` (other results are str()-ed)."""

    name: str
    fn: Callable[..., Any]
    schema: dict = field(default_factory=dict)
    """{"type": "function", "function": {"name", "description", "parameters"}}"""


# ---------------------------------------------------------------------------------------
# Parsing calls

_TOOL_CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)
_PYTHON_BLOCK = re.compile(r"```(?:python|py)[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def parse_tool_calls(text: str, python_blocks: bool = False) -> tuple[list[ToolCall], list[ToolCallError]]:
    """Tool calls in an assistant turn, in order, and the malformed ones.

    >>> calls, errors = parse_tool_calls('<tool_call>{"name": "calc", "arguments": {"x": "1+1"}}</tool_call>')
    >>> calls[0].name, calls[0].arguments, errors
    ('calc', {'x': '1+1'}, [])
    >>> parse_tool_calls('<tool_call>{"name": calc}</tool_call>')[1][0].kind
    'malformed_tool_call'
    >>> parse_tool_calls("```python\\nprint(2)\\n```", python_blocks=True)[0]
    [ToolCall(name='python', arguments={'code': 'print(2)\\n'})]
    """
    calls: list[tuple[int, ToolCall]] = []
    errors: list[ToolCallError] = []
    for match in _TOOL_CALL.finditer(text):
        body = match.group(1).strip()
        if not match.group(0).endswith("</tool_call>"):
            errors.append(ToolCallError("malformed_tool_call", "a <tool_call> without its closing </tool_call>"))
            continue
        try:
            data = json.loads(body, strict=False)  # raw newlines inside strings are common
        except json.JSONDecodeError as e:
            errors.append(ToolCallError("malformed_tool_call", f"the tool call is not valid JSON ({e.msg})"))
            continue
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            errors.append(ToolCallError("malformed_tool_call", 'a tool call needs {"name": ..., "arguments": {...}}'))
            continue
        arguments = data.get("arguments", data.get("parameters", {}))
        if isinstance(arguments, str):  # some models send the arguments JSON-encoded
            try:
                arguments = json.loads(arguments)
            except json.JSONDecodeError:
                pass
        if not isinstance(arguments, dict):
            errors.append(ToolCallError("malformed_tool_call", "the tool call's arguments are not a JSON object"))
            continue
        calls.append((match.start(), ToolCall(data["name"], arguments)))
    if python_blocks:
        for match in _PYTHON_BLOCK.finditer(text):
            if not any(m.start() <= match.start() < m.end() for m in _TOOL_CALL.finditer(text)):
                calls.append((match.start(), ToolCall("python", {"code": match.group(1)})))
    return [c for _, c in sorted(calls, key=lambda x: x[0])], errors


def run_call(tools: dict[str, Tool], call: ToolCall, max_chars: int = 2000) -> ToolResult:
    """Run one call; every failure becomes a `ToolResult` with an error kind, never an exception."""
    tool = tools.get(call.name)
    if tool is None:
        return ToolResult(f"unknown tool {call.name!r}; available: {', '.join(sorted(tools)) or 'none'}",
                          "unknown_tool")
    try:
        inspect.signature(tool.fn).bind(**call.arguments)
    except TypeError as e:  # wrong or missing argument names
        return ToolResult(f"bad arguments for {call.name}: {e}", "bad_arguments")
    try:
        out = tool.fn(**call.arguments)
    except Exception as e:  # noqa: BLE001 - a tool's failure is data for the model, not a crash
        return ToolResult(f"{call.name} failed: {type(e).__name__}: {e}", "tool_error")
    if isinstance(out, ToolResult):
        return ToolResult(truncate(out.content, max_chars), out.error)
    return ToolResult(truncate(str(out), max_chars))


def truncate(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    return text[:max_chars] + f"\n... [{len(text) - max_chars} more characters cut]"


# ---------------------------------------------------------------------------------------
# Calculator: exact arithmetic through an AST walk

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS = {"abs": abs, "min": min, "max": max, "round": round, "sqrt": math.sqrt, "gcd": math.gcd}
MAX_EXPONENT = 10_000
MAX_DIGITS = 10_000


def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression exactly (integers stay integers).

    Args:
        expression: e.g. "123456789 * 987654321 - 17", with + - * / // % ** ( ) abs min max round sqrt gcd

    >>> calculate("123456789 * 987654321 - 17"), calculate("7 / 2"), calculate("2 ** 100 % 1000")
    ('121932631112635252', '3.5', '376')
    """
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as e:
        raise ValueError(f"not an arithmetic expression: {e.msg}") from None
    return str(_evaluate(tree.body))


def _evaluate(node: ast.AST):
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ValueError(f"exponent {right} is larger than {MAX_EXPONENT}")
        if isinstance(node.op, ast.Pow) and isinstance(left, int) and isinstance(right, int) and right > 0 \
                and abs(left) > 1 and right * math.log10(abs(left)) > MAX_DIGITS:
            raise ValueError(f"the result would have more than {MAX_DIGITS} digits")
        value = _BINARY[type(node.op)](left, right)
        if isinstance(value, int) and value.bit_length() > MAX_DIGITS * 3.33:
            raise ValueError(f"the result has more than {MAX_DIGITS} digits")
        return value
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS \
            and not node.keywords:
        return _FUNCTIONS[node.func.id](*(_evaluate(a) for a in node.args))
    raise ValueError(f"unsupported in a calculator expression: {ast.dump(node)[:60]}")


def calculator_tool() -> Tool:
    """The calculator as a `Tool` (schema written out: no transformers import needed)."""
    schema = {"type": "function", "function": {
        "name": "calculator", "description": "Evaluate an arithmetic expression exactly.",
        "parameters": {"type": "object", "properties": {"expression": {
            "type": "string", "description": "e.g. 123456789 * 987654321 - 17"}}, "required": ["expression"]}}}
    return Tool("calculator", calculate, schema)


# ---------------------------------------------------------------------------------------
# Python interpreter in the sandbox, stateful across the calls of one trajectory

_RUNNER = r'''
import ast, contextlib, io, json, sys, traceback
_previous, _cell = json.loads(__PREVIOUS__), json.loads(__CELL__)
_ns = {"__name__": "__main__"}
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    for _c in _previous:
        exec(compile(_c, "<previous cell>", "exec"), _ns)
try:
    _tree = ast.parse(_cell, "<cell>")
    _last = _tree.body.pop() if _tree.body and isinstance(_tree.body[-1], ast.Expr) else None
    exec(compile(_tree, "<cell>", "exec"), _ns)
    if _last is not None:
        _value = eval(compile(ast.Expression(_last.value), "<cell>", "eval"), _ns)
        if _value is not None:
            print(repr(_value))
except BaseException:
    _kind, _error, _tb = sys.exc_info()
    sys.stdout.flush()
    print("".join(traceback.format_exception_only(_kind, _error)).strip(), file=sys.stderr)
    sys.exit(1)
'''


class PythonTool:
    """A sandboxed Python interpreter whose state persists across one trajectory's calls.

    Args:
        timeout: wall-clock seconds per call (earlier cells re-run inside it).
        memory_bytes: address-space limit of the sandboxed process.
        max_output_chars: output shown to the model (the rest is cut, and the cut is said).
    """

    name = "python"

    def __init__(self, timeout: float = 5.0, memory_bytes: int = 512 << 20, max_output_chars: int = 1000):
        self.timeout, self.memory_bytes, self.max_output_chars = timeout, memory_bytes, max_output_chars
        self.cells: list[str] = []
        self.calls = 0

    def run(self, code: str) -> ToolResult:
        """Run one cell; on success it joins the state the next cells see."""
        from reasonloop.verify.code import SandboxLimits, run_python

        self.calls += 1
        source = _RUNNER.replace("__PREVIOUS__", repr(json.dumps(self.cells))).replace(
            "__CELL__", repr(json.dumps(code)))
        limits = SandboxLimits(timeout=self.timeout, memory_bytes=self.memory_bytes,
                               max_output_chars=self.max_output_chars * 4)
        result = run_python(source, limits=limits)
        out = result.stdout
        if result.verdict == "passed":
            self.cells.append(code)
            return ToolResult(truncate(out, self.max_output_chars) or "(no output)")
        if result.verdict == "timeout":
            return ToolResult(truncate(out, self.max_output_chars) + f"\nTimeoutError: the cell ran longer than "
                              f"{self.timeout:g} s and was stopped", "tool_timeout")
        if result.verdict == "memory":
            return ToolResult("MemoryError: the cell used more memory than allowed", "tool_error")
        error = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}"
        return ToolResult(truncate(out + error, self.max_output_chars), "tool_error")

    def as_tool(self) -> Tool:
        schema = {"type": "function", "function": {
            "name": "python", "description": "Run Python code; variables persist between calls. "
            "The last expression's value is printed.",
            "parameters": {"type": "object", "properties": {"code": {"type": "string",
                                                                     "description": "Python source"}},
                           "required": ["code"]}}}
        return Tool("python", lambda code: self.run(code), schema)
