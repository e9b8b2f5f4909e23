//! Tool, resource and prompt fixtures of the test MCP server.

use serde_json::{json, Value};

/// One tool the test server advertises in `tools/list`.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// Tool name (`params.name` of `tools/call`).
    pub name: String,
    /// Human-readable description.
    pub description: String,
    /// JSON Schema of the arguments (`inputSchema`).
    pub input_schema: Value,
    /// Optional `outputSchema`; tools with one answer with `structuredContent`.
    pub output_schema: Option<Value>,
    /// Optional `annotations` object.
    pub annotations: Option<Value>,
}

impl ToolSpec {
    /// A tool with the given name, description and input schema.
    pub fn new(name: &str, description: &str, input_schema: Value) -> Self {
        Self {
            name: name.to_string(),
            description: description.to_string(),
            input_schema,
            output_schema: None,
            annotations: None,
        }
    }

    /// Adds an `outputSchema`.
    pub fn with_output_schema(mut self, schema: Value) -> Self {
        self.output_schema = Some(schema);
        self
    }

    /// Adds `annotations`.
    pub fn with_annotations(mut self, annotations: Value) -> Self {
        self.annotations = Some(annotations);
        self
    }

    /// The tool as it appears in a `tools/list` result.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "name": self.name,
            "description": self.description,
            "inputSchema": self.input_schema,
        });
        if let Some(obj) = v.as_object_mut() {
            if let Some(o) = &self.output_schema {
                obj.insert("outputSchema".into(), o.clone());
            }
            if let Some(a) = &self.annotations {
                obj.insert("annotations".into(), a.clone());
            }
        }
        v
    }
}

fn string_arg(name: &str, description: &str) -> Value {
    json!({
        "type": "object",
        "properties": {name: {"type": "string", "description": description}},
        "required": [name],
    })
}

/// The demo tool set: `echo`, `add`, `get_weather`, `delete_repo`, `deploy_service`,
/// `admin_reset`, `fail`.
pub fn demo_tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec::new(
            "echo",
            "Echoes the given text back unchanged.",
            string_arg("text", "Text to echo"),
        ),
        ToolSpec::new(
            "add",
            "Adds two numbers and returns their sum.",
            json!({
                "type": "object",
                "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                "required": ["a", "b"],
            }),
        )
        .with_output_schema(json!({
            "type": "object",
            "properties": {"sum": {"type": "number"}},
            "required": ["sum"],
        }))
        .with_annotations(json!({"readOnlyHint": true, "destructiveHint": false})),
        ToolSpec::new(
            "get_weather",
            "Get current weather information for a city.",
            string_arg("city", "City name"),
        )
        .with_annotations(json!({"readOnlyHint": true})),
        ToolSpec::new(
            "delete_repo",
            "Permanently delete a source code repository.",
            string_arg("repo", "Repository, as owner/name"),
        )
        .with_annotations(json!({"destructiveHint": true})),
        ToolSpec::new(
            "deploy_service",
            "Deploy a service to production.",
            string_arg("service", "Service name"),
        ),
        ToolSpec::new(
            "admin_reset",
            "Reset all administrative state of the server.",
            json!({"type": "object", "properties": {}}),
        )
        .with_annotations(json!({"destructiveHint": true})),
        ToolSpec::new(
            "fail",
            "Always fails with a tool execution error (isError: true).",
            json!({"type": "object", "properties": {}}),
        ),
    ]
}

const DOMAINS: [&str; 8] = [
    "billing",
    "crm",
    "inventory",
    "analytics",
    "support",
    "payroll",
    "shipping",
    "catalog",
];
const VERBS: [&str; 5] = ["Search", "List", "Fetch", "Update", "Archive"];

/// `n` generated tools `tool_0000`, `tool_0001`, … of about 220 bytes each in `tools/list`
/// (realistic description plus a small input schema), for size-dependent tests and benchmarks:
/// 5 / 50 / 500 tools make `tools/list` responses of about 1.1 KB / 11 KB / 110 KB.
pub fn generated_tools(n: usize) -> Vec<ToolSpec> {
    (0..n)
        .map(|i| {
            let domain = DOMAINS.get(i % DOMAINS.len()).copied().unwrap_or("misc");
            let verb = VERBS.get(i % VERBS.len()).copied().unwrap_or("Get");
            ToolSpec::new(
                &format!("tool_{i:04}"),
                &format!("{verb} {domain} records matching a query, sorted newest first."),
                json!({
                    "type": "object",
                    "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
                    "required": ["query"],
                }),
            )
        })
        .collect()
}

/// The fake email address in a `customer_record` result.
pub const CUSTOMER_EMAIL: &str = "jane.doe@acme-corp.com";
/// The fake card number (Luhn-valid) in a `customer_record` result.
pub const CUSTOMER_CARD: &str = "4111 1111 1111 1111";

/// The result of calling `tool` with `args` (a `CallToolResult`, without era-specific fields).
pub fn call_result(tool: &ToolSpec, args: &Value) -> Value {
    let arg = |k: &str| args.get(k).and_then(Value::as_str).unwrap_or_default();
    let text = |t: String| json!({"content": [{"type": "text", "text": t}]});
    match tool.name.as_str() {
        "echo" => text(arg("text").to_string()),
        "add" => {
            let num = |k: &str| args.get(k).and_then(Value::as_f64).unwrap_or(0.0);
            let sum = num("a") + num("b");
            let structured = json!({"sum": sum});
            json!({
                "content": [{"type": "text", "text": structured.to_string()}],
                "structuredContent": structured,
            })
        }
        "get_weather" => text(format!(
            "Weather in {}: 18 degrees C, partly cloudy",
            arg("city")
        )),
        "delete_repo" => text(format!("Deleted repository {}", arg("repo"))),
        "deploy_service" => text(format!("Deployed service {}", arg("service"))),
        "admin_reset" => text("Administrative state reset".to_string()),
        "fail" => json!({
            "content": [{"type": "text", "text": "Tool failed as requested"}],
            "isError": true,
        }),
        // Fake PII in a result (not in the demo set; `make soak` adds it): what mcp_pii must
        // scrub on the way back.
        "customer_record" => text(format!(
            "customer {}: Jane Doe, {CUSTOMER_EMAIL}, card {CUSTOMER_CARD}",
            arg("customer_id")
        )),
        other => text(format!("{other} called with {args}")),
    }
}

/// The resources of `resources/list`.
pub fn resources() -> Value {
    Value::Array(
        (1..=3)
            .map(|i| {
                json!({
                    "uri": format!("test://text/{i}"),
                    "name": format!("text-{i}"),
                    "description": format!("Plain text resource number {i}"),
                    "mimeType": "text/plain",
                })
            })
            .collect(),
    )
}

/// The contents of a `test://text/<id>` resource, or `None` for other URIs.
pub fn read_resource(uri: &str) -> Option<Value> {
    let id = uri.strip_prefix("test://text/")?;
    if id.is_empty() {
        return None;
    }
    Some(json!({
        "contents": [{"uri": uri, "mimeType": "text/plain", "text": format!("This is text resource {id}.")}],
    }))
}

/// The prompts of `prompts/list`.
pub fn prompts() -> Value {
    json!([{
        "name": "greet",
        "description": "Greets someone by name",
        "arguments": [{"name": "name", "description": "Who to greet", "required": true}],
    }])
}

/// The result of `prompts/get`, or `None` for unknown prompts.
pub fn get_prompt(name: &str, args: &Value) -> Option<Value> {
    if name != "greet" {
        return None;
    }
    let who = args
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("stranger");
    Some(json!({
        "description": "Greets someone by name",
        "messages": [{"role": "user", "content": {"type": "text", "text": format!("Hello, {who}! Welcome to the MCP test server.")}}],
    }))
}
