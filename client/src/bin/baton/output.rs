//! How the CLI prints things: stats, node data as JSON, watch events, tree lines. Pure
//! formatting (strings and JSON values), so every format is unit-tested; no I/O here.

use baton::recipes::registry::Instance;
use baton::{EventKind, Stat, WatchEvent};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

/// A stat as JSON, every field a number.
pub fn stat_json(stat: &Stat) -> Value {
    json!({
        "czxid": stat.czxid.0,
        "mzxid": stat.mzxid.0,
        "pzxid": stat.pzxid.0,
        "ctime_ms": stat.ctime_ms,
        "mtime_ms": stat.mtime_ms,
        "version": stat.version,
        "cversion": stat.cversion,
        "aversion": stat.aversion,
        "ephemeral_owner": stat.ephemeral_owner.0,
        "data_length": stat.data_length,
        "num_children": stat.num_children,
    })
}

/// A stat as `field = value` lines, each ending in a newline.
pub fn stat_text(stat: &Stat) -> String {
    let rows: [(&str, String); 11] = [
        ("czxid", stat.czxid.to_string()),
        ("mzxid", stat.mzxid.to_string()),
        ("pzxid", stat.pzxid.to_string()),
        ("ctime", time_text(stat.ctime_ms)),
        ("mtime", time_text(stat.mtime_ms)),
        ("version", stat.version.to_string()),
        ("cversion", stat.cversion.to_string()),
        ("aversion", stat.aversion.to_string()),
        ("ephemeral_owner", stat.ephemeral_owner.to_string()),
        ("data_length", stat.data_length.to_string()),
        ("num_children", stat.num_children.to_string()),
    ];
    let mut out = String::new();
    for (name, value) in rows {
        let _ = writeln!(out, "{name:<15} = {value}");
    }
    out
}

/// Milliseconds since the epoch as RFC 3339 (UTC) followed by the raw number.
fn time_text(ms: u64) -> String {
    format!("{} ({ms})", rfc3339(ms))
}

/// Milliseconds since the epoch as RFC 3339 (UTC, millisecond precision).
pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// A node's path, data and stat as one JSON object. Data that is valid UTF-8 is a string
/// with `"encoding": "utf8"`; anything else is base64 with `"encoding": "base64"`.
pub fn node_json(path: &str, data: &[u8], stat: &Stat) -> Value {
    let (data, encoding) = data_json(data);
    json!({
        "path": path,
        "data": data,
        "encoding": encoding,
        "stat": stat_json(stat),
    })
}

/// The name of an event kind in the CLI's output.
pub fn event_type(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Created => "created",
        EventKind::Deleted => "deleted",
        EventKind::DataChanged => "data_changed",
        EventKind::ChildrenChanged => "children_changed",
        EventKind::WatchReset => "watch_reset",
        EventKind::Turn => "turn",
    }
}

/// A watch event as one line (without the newline): `TYPE PATH ZXID`, or JSON.
pub fn event_line(event: &WatchEvent, as_json: bool) -> String {
    if as_json {
        json!({
            "type": event_type(event.kind),
            "path": event.path,
            "zxid": event.zxid.0,
        })
        .to_string()
    } else {
        format!("{} {} {}", event_type(event.kind), event.path, event.zxid)
    }
}

/// One line of `baton tree`: the root as given, descendants by name, indented by depth.
pub fn tree_line(path: &str, depth: usize) -> String {
    if depth == 0 { path.to_owned() } else { format!("{}{}", "  ".repeat(depth), baton::proto::path::name(path)) }
}

/// A registered instance as one line: `ID DATA`, see [`data_text`].
pub fn instance_line(instance: &Instance) -> String {
    format!("{} {}", instance.id, data_text(&instance.metadata))
}

/// Data as one line of text: UTF-8 with control characters escaped (`\n`, `\t`,
/// `\u{1b}`, and `\\` for a backslash), else `base64:` and its base64.
pub fn data_text(data: &[u8]) -> String {
    let Ok(text) = std::str::from_utf8(data) else {
        return format!("base64:{}", baton::proto::base64::encode(data));
    };
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// A set of instances as a JSON array of `{"id", "data", "encoding"}`, data as in
/// [`node_json`].
pub fn instances_json(instances: &[Instance]) -> Value {
    Value::Array(
        instances
            .iter()
            .map(|instance| {
                let (data, encoding) = data_json(&instance.metadata);
                json!({"id": instance.id, "data": data, "encoding": encoding})
            })
            .collect(),
    )
}

/// Data as a JSON string: itself if UTF-8 (`"utf8"`), else its base64 (`"base64"`).
pub fn data_json(data: &[u8]) -> (String, &'static str) {
    match std::str::from_utf8(data) {
        Ok(text) => (text.to_owned(), "utf8"),
        Err(_) => (baton::proto::base64::encode(data), "base64"),
    }
}

/// The current leader as one line: its id, or `-` when there is none; or JSON
/// `{"leader": ID}` / `{"leader": null}`.
pub fn leader_line(leader: Option<&str>, as_json: bool) -> String {
    match (leader, as_json) {
        (Some(id), false) => id.to_owned(),
        (None, false) => "-".to_owned(),
        (leader, true) => json!({ "leader": leader }).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton::{SessionId, Zxid};

    fn sample_stat() -> Stat {
        Stat {
            czxid: Zxid(0x1_0000_0002),
            mzxid: Zxid(0x1_0000_0005),
            pzxid: Zxid(0x1_0000_0002),
            ctime_ms: 1_700_000_000_123,
            mtime_ms: 1_700_000_000_456,
            version: 3,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: SessionId(0x42),
            data_length: 2,
            num_children: 0,
        }
    }

    #[test]
    fn node_json_keeps_text_as_text_and_binary_as_base64() {
        let stat = sample_stat();
        let text = node_json("/a", b"hi", &stat);
        assert_eq!(text["data"], "hi");
        assert_eq!(text["encoding"], "utf8");
        assert_eq!(text["path"], "/a");
        assert_eq!(text["stat"]["version"], 3);
        let binary = node_json("/a", &[0xff, 0xfe], &stat);
        assert_eq!(binary["data"], "//4=");
        assert_eq!(binary["encoding"], "base64");
    }

    #[test]
    fn stat_json_uses_numbers() {
        let v = stat_json(&sample_stat());
        assert_eq!(v["czxid"], 0x1_0000_0002_u64);
        assert_eq!(v["ephemeral_owner"], 0x42);
        assert_eq!(v["mtime_ms"], 1_700_000_000_456_u64);
        assert_eq!(v.as_object().unwrap().len(), 11);
    }

    #[test]
    fn stat_text_lists_every_field() {
        let text = stat_text(&sample_stat());
        assert_eq!(text.lines().count(), 11);
        assert!(text.contains("mzxid           = 0x100000005\n"));
        assert!(text.contains("ctime           = 2023-11-14T22:13:20.123Z (1700000000123)\n"));
        assert!(text.contains("ephemeral_owner = 0x42\n"));
    }

    #[test]
    fn events_print_as_text_or_json() {
        let event = WatchEvent { zxid: Zxid(0x1_0000_0003), path: "/a/b".into(), kind: EventKind::DataChanged };
        assert_eq!(event_line(&event, false), "data_changed /a/b 0x100000003");
        let parsed: Value = serde_json::from_str(&event_line(&event, true)).unwrap();
        assert_eq!(parsed, json!({"type": "data_changed", "path": "/a/b", "zxid": 0x1_0000_0003_u64}));
        assert_eq!(event_type(EventKind::WatchReset), "watch_reset");
        assert_eq!(event_type(EventKind::ChildrenChanged), "children_changed");
    }

    #[test]
    fn instances_print_as_lines_or_json() {
        let instance =
            Instance { id: "host-a:80".into(), metadata: b"{\"zone\":\"a\"}\n".to_vec(), stat: sample_stat() };
        assert_eq!(instance_line(&instance), "host-a:80 {\"zone\":\"a\"}\\n");
        let binary = Instance { id: "b".into(), metadata: vec![0xff], stat: sample_stat() };
        assert_eq!(instance_line(&binary), "b base64:/w==");
        assert_eq!(
            instances_json(&[instance, binary]),
            json!([
                {"id": "host-a:80", "data": "{\"zone\":\"a\"}\n", "encoding": "utf8"},
                {"id": "b", "data": "/w==", "encoding": "base64"},
            ])
        );
        assert_eq!(data_text(b"a\\b\t\x1b"), "a\\\\b\\t\\u{1b}");
    }

    #[test]
    fn leaders_print_as_ids_or_json() {
        assert_eq!(leader_line(Some("h:1"), false), "h:1");
        assert_eq!(leader_line(None, false), "-");
        assert_eq!(leader_line(Some("h:1"), true), r#"{"leader":"h:1"}"#);
        assert_eq!(leader_line(None, true), r#"{"leader":null}"#);
    }

    #[test]
    fn tree_lines_indent_names_by_depth() {
        assert_eq!(tree_line("/app", 0), "/app");
        assert_eq!(tree_line("/app/config", 1), "  config");
        assert_eq!(tree_line("/app/config/db", 2), "    db");
    }
}
