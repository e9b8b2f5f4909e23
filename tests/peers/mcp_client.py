"""Drive the PyPI `mcp` client against one Streamable HTTP endpoint and print a JSON summary.

Usage: mcp_client.py URL [--call TOOL ARGS_JSON]... [--header NAME:VALUE]... [--mode auto|legacy]
                     [--notifications]

Works with both SDK generations installed by `make peers-deps`:
  * 1.x (`.venv-mcp1`): `ClientSession` over `streamablehttp_client`, initialize handshake only.
  * 2.x (`.venv-mcp2`): the high-level `mcp.Client`, which by default ("auto") probes the
    2026-07-28 `server/discover` first and falls back to `initialize` on a legacy server, so the
    gateway sees the same probe a real 2.x client sends.

`--notifications` passes a progress callback with every call (so each request carries a
`progressToken`) and a logging callback (2.x: also opts in to log messages at `debug` on
2026-07-28 connections); what they receive lands in the summary.

The Rust peer tests assert on the summary, one JSON object on stdout:
  {"sdk": "1.30.0", "api": "1.x", "protocol_version": ..., "server_name": ...,
   "tools": [names...], "output_schema_tools": [names...], "calls": [{"tool", "is_error", "text": [...], "structured", "error",
   "progress"?: [{"progress", "total", "message"}]}],
   "logs"?: [{"level", "logger", "data"}],
   "error": null | {"type", "message", "code"?}}
Exit status 0 when the summary was printed (tool and protocol errors are data, not failures);
2 for bad usage.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
from datetime import timedelta
from typing import Any

import anyio

# One bound for every request: a gateway that swallows a response must fail the test, not hang it.
READ_TIMEOUT_SECONDS = 30.0
OVERALL_TIMEOUT_SECONDS = 90.0


def sdk_version() -> str:
    return importlib.metadata.version("mcp")


def is_v2() -> bool:
    # 2.x exports the high-level `Client`; 1.x only has `ClientSession` (mcp.__version__ does not
    # exist in either generation, so the import is the reliable signal).
    try:
        from mcp import Client  # noqa: F401
    except ImportError:
        return False
    return True


def describe_error(exc: BaseException) -> dict[str, Any]:
    # anyio task groups wrap the real failure (e.g. an httpx status error) in exception groups.
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    out: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    if isinstance(code, int):
        out["code"] = code
        out["message"] = getattr(error, "message", str(exc))
    if isinstance(exc, BaseExceptionGroup):
        out["inner"] = [describe_error(e) for e in exc.exceptions]
    return out


def summarize_result(tool: str, result: Any) -> dict[str, Any]:
    # by_alias gives the wire (camelCase) names in both generations, whose attribute names differ.
    wire = result.model_dump(by_alias=True, mode="json", exclude_none=True)
    return {
        "tool": tool,
        "is_error": bool(wire.get("isError", False)),
        "text": [c.get("text", "") for c in wire.get("content", []) if c.get("type") == "text"],
        "content_types": [c.get("type") for c in wire.get("content", [])],
        "structured": wire.get("structuredContent"),
        "error": None,
    }


async def list_all_tools(list_page, summary: dict[str, Any]) -> list[str]:
    names: list[str] = []
    cursor = None
    for _ in range(100):
        page = await list_page(cursor)
        names.extend(t.name for t in page.tools)
        # Tools whose results the client validates against an output schema (both generations
        # do, in call_tool).
        summary["output_schema_tools"].extend(
            t.name for t in page.tools if (getattr(t, "outputSchema", None) or getattr(t, "output_schema", None))
        )
        cursor = getattr(page, "nextCursor", None) or getattr(page, "next_cursor", None)
        if not cursor:
            break
    return names


class Notifications:
    """Progress and log notifications the client received (`--notifications`)."""

    def __init__(self, summary: dict[str, Any]) -> None:
        summary["logs"] = []
        self.logs: list[dict[str, Any]] = summary["logs"]

    def progress_callback(self, sink: list[dict[str, Any]]):
        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            sink.append({"progress": progress, "total": total, "message": message})

        return on_progress

    async def on_log(self, params: Any) -> None:
        self.logs.append({"level": str(params.level), "logger": params.logger, "data": params.data})


async def run_calls(calls, call_tool, summary: dict[str, Any], notes: Notifications | None) -> None:
    for tool, args in calls:
        progress: list[dict[str, Any]] = []
        callback = notes.progress_callback(progress) if notes else None
        try:
            result = await call_tool(tool, args, callback)
            entry = summarize_result(tool, result)
        except Exception as exc:  # a JSON-RPC error is an outcome the test asserts on
            entry = {"tool": tool, "is_error": True, "text": [], "content_types": [], "structured": None,
                     "error": describe_error(exc)}
        if notes:
            entry["progress"] = progress
        summary["calls"].append(entry)


async def run_v1(url: str, headers: dict[str, str], calls, summary: dict[str, Any], notes: Notifications | None) -> None:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async with streamablehttp_client(url, headers=headers or None) as (read, write, _session_id):
        async with ClientSession(
            read,
            write,
            read_timeout_seconds=timedelta(seconds=READ_TIMEOUT_SECONDS),
            logging_callback=notes.on_log if notes else None,
        ) as session:
            init = await session.initialize()
            summary["protocol_version"] = init.protocolVersion
            summary["server_name"] = init.serverInfo.name
            summary["tools"] = await list_all_tools(lambda c: session.list_tools(cursor=c), summary)
            await run_calls(
                calls, lambda t, a, p: session.call_tool(t, a, progress_callback=p), summary, notes
            )


async def run_v2(
    url: str, headers: dict[str, str], calls, mode: str, summary: dict[str, Any], notes: Notifications | None
) -> None:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    server: Any = url
    if headers:
        # A URL string builds a header-less transport; headers need a caller-supplied http client.
        server = streamable_http_client(url, http_client=create_mcp_http_client(headers=headers))
    options: dict[str, Any] = {}
    if notes:
        options = {"logging_callback": notes.on_log, "log_level": "debug"}
    async with Client(server, mode=mode, read_timeout_seconds=READ_TIMEOUT_SECONDS, **options) as client:
        summary["protocol_version"] = client.protocol_version
        info = client.server_info
        summary["server_name"] = info.name if info is not None else None
        summary["tools"] = await list_all_tools(lambda c: client.list_tools(cursor=c), summary)
        await run_calls(calls, lambda t, a, p: client.call_tool(t, a, progress_callback=p), summary, notes)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--call", nargs=2, action="append", default=[], metavar=("TOOL", "ARGS_JSON"))
    parser.add_argument("--header", action="append", default=[], metavar="NAME:VALUE")
    parser.add_argument("--mode", default="auto", choices=["auto", "legacy"], help="2.x only")
    parser.add_argument("--notifications", action="store_true", help="record progress and log notifications")
    args = parser.parse_args(argv)
    try:
        args.calls = [(tool, json.loads(raw)) for tool, raw in args.call]
    except json.JSONDecodeError as exc:
        parser.error(f"--call ARGS_JSON is not JSON: {exc}")
    args.headers = {}
    for h in args.header:
        name, sep, value = h.partition(":")
        if not sep:
            parser.error(f"--header {h!r} is not NAME:VALUE")
        args.headers[name.strip()] = value.strip()
    return args


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    v2 = is_v2()
    summary: dict[str, Any] = {
        "sdk": sdk_version(),
        "api": "2.x" if v2 else "1.x",
        "url": args.url,
        "protocol_version": None,
        "server_name": None,
        "tools": [],
        "output_schema_tools": [],
        "calls": [],
        "error": None,
    }
    notes = Notifications(summary) if args.notifications else None
    try:
        with anyio.fail_after(OVERALL_TIMEOUT_SECONDS):
            if v2:
                await run_v2(args.url, args.headers, args.calls, args.mode, summary, notes)
            else:
                await run_v1(args.url, args.headers, args.calls, summary, notes)
    except BaseException as exc:  # noqa: BLE001 - report every failure as data
        if isinstance(exc, KeyboardInterrupt):
            raise
        summary["error"] = describe_error(exc)
    return summary


def main() -> int:
    args = parse_args(sys.argv[1:])
    summary = anyio.run(main_async, args)
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
