-- wrk script for `make bench`: one fixed MCP POST per request, described by environment variables
-- so a single script serves every workload.
--   BENCH_WORKLOAD  value of the `x-bench` header; the bench upstream picks its canned response by it
--   BENCH_BODY      the JSON-RPC request body
--   BENCH_HEADERS   extra headers, one "name: value" per line: the bench's `authorization: Bearer`
--                   token for mcp_scopes, then the `--header` ones (a later line wins)
-- By hand:  BENCH_WORKLOAD=call BENCH_BODY='{"jsonrpc":"2.0",...}' wrk -t1 -c1 -d5s --latency \
--             -s bench/mcp.lua http://127.0.0.1:10000/mcp
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY") or ""
wrk.headers["content-type"] = "application/json"
-- Streamable HTTP clients must accept both; Envoy's native MCP filter only classifies a POST as MCP
-- when both are present.
wrk.headers["accept"] = "application/json, text/event-stream"
wrk.headers["mcp-protocol-version"] = "2025-06-18"
wrk.headers["x-bench"] = os.getenv("BENCH_WORKLOAD") or ""
for line in string.gmatch(os.getenv("BENCH_HEADERS") or "", "[^\n]+") do
  local name, value = string.match(line, "^%s*([^:]+):%s*(.-)%s*$")
  if name then
    wrk.headers[name] = value
  end
end
