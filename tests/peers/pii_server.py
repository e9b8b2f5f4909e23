"""A PyPI `mcp` FastMCP server whose tools hand out fake PII, for the mcp_pii peer test.

Usage: pii_server.py PORT RECORD_PATH

Serves Streamable HTTP on http://127.0.0.1:PORT/mcp (stateful, SSE responses: the SDK default).
Runs with either SDK generation installed by `make peers-deps`:
  * 1.x (`.venv-mcp1`): `mcp.server.fastmcp.FastMCP`.
  * 2.x (`.venv-mcp2`): `mcp.server.mcpserver.MCPServer` (FastMCP's name in mcp 2).

Tools:
  * `customer_record(customer_id)` returns a `Customer` TypedDict, so the SDK derives an
    `outputSchema` (string properties) and answers with `structuredContent` plus its JSON text copy.
    Before answering it reports progress with a message carrying an email and logs a message
    carrying a card number and an SSN (on the request's SSE stream).
  * `file_note(note)` echoes the note it received.

Every tools/call's arguments, as the server received them, are appended as one JSON line to
RECORD_PATH, so the test can prove that a redacted argument never arrived. The fake values are
exported as `PII` for reference; the Rust test (tests/tests/peers.rs) carries its own copy.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TypedDict

try:  # mcp 1.x
    from mcp.server.fastmcp import Context, FastMCP as Server
except ModuleNotFoundError:  # mcp 2.x
    from mcp.server.mcpserver import Context, MCPServer as Server

# Fake but detector-valid values: the card passes Luhn, the IBAN mod-97, the SSN's area/group/
# serial are valid, the phone is E.164.
PII = {
    "email": "jane.doe@acme-corp.com",
    "phone": "+44 20 7946 0958",
    "card": "4111 1111 1111 1111",
    "ssn": "536-22-8714",
    "iban": "DE89 3704 0044 0532 0130 00",
    "ip": "203.0.113.42",
}


class Customer(TypedDict):
    customer_id: str
    name: str
    email: str
    phone: str
    card: str
    ssn: str
    iban: str
    last_login_ip: str
    note: str


def record(path: str, tool: str, arguments: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"tool": tool, "arguments": arguments}) + "\n")


def build(record_path: str) -> Any:
    mcp = Server("pii-peer")

    @mcp.tool()
    async def customer_record(customer_id: str, ctx: Context) -> Customer:
        """Look up a customer (returns fake personal data)."""
        record(record_path, "customer_record", {"customer_id": customer_id})
        await ctx.report_progress(1, 2, f"looking up {customer_id}, contact {PII['email']}")
        await ctx.info(f"card on file {PII['card']}, SSN {PII['ssn']}")
        await ctx.report_progress(2, 2, "done")
        return Customer(
            customer_id=customer_id,
            name="Jane Doe",
            email=PII["email"],
            phone=PII["phone"],
            card=PII["card"],
            ssn=PII["ssn"],
            iban=PII["iban"],
            last_login_ip=PII["ip"],
            note=f"prefers mail to {PII['email']} after 2025-10-01 (order 4155550132)",
        )

    @mcp.tool()
    async def file_note(note: str) -> str:
        """Store a note and echo it back."""
        record(record_path, "file_note", {"note": note})
        return f"stored: {note}"

    return mcp


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.splitlines()[2], file=sys.stderr)
        return 2
    port, record_path = int(sys.argv[1]), sys.argv[2]
    mcp = build(record_path)
    if hasattr(mcp.settings, "port"):  # 1.x: host and port are server settings
        mcp.settings.host = "127.0.0.1"
        mcp.settings.port = port
        mcp.run(transport="streamable-http")
    else:  # 2.x: they are arguments of run()
        mcp.run(transport="streamable-http", host="127.0.0.1", port=port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
