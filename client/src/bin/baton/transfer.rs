//! `baton export` and `baton import`: a subtree as one JSON document, and back again.
//!
//! The document (see [`crate::args::DOCUMENT_HELP`]) is
//! `{"format": "baton-export", "version": 1, "root": PATH, "nodes": [NODE, ...]}`, written one
//! node per line, parents before children. A NODE is `{"path", "kind", "data", "encoding",
//! "stat"}`: data as for `baton get --json`, `stat` for humans only (import ignores it).
//!
//! The pure part — entries, parsing and checking a document, base64, planning the writes and
//! cutting them into batches — is unit-tested here; [`export`] and [`import`] do the I/O
//! through a [`Client`]. Neither recurses over the tree.

use crate::commands::at;
use crate::output;
use anyhow::{Context as _, Result, bail};
use baton::proto::path;
use baton::{Client, CreateKind, CreateRequest, ErrorCode, MultiOp, Stat};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write as _};

/// The document's `"format"`.
pub const FORMAT: &str = "baton-export";
/// The document's `"version"`: the only one this tool writes and reads.
pub const FORMAT_VERSION: u64 = 1;
/// The largest document `import` reads from stdin.
pub const DOCUMENT_BYTES_MAX: u64 = 1 << 30;
/// The most writes in one `multi`.
pub const BATCH_OPS_MAX: usize = 1000;
/// The most bytes (paths and data) in one `multi`, well inside the server's default frame
/// limit (1 MiB + 64 KiB). A single larger node goes in a batch of its own.
pub const BATCH_BYTES_MAX: usize = 512 * 1024;
/// What a write costs in a batch beyond its path and data (op tag, lengths).
const OP_OVERHEAD_BYTES: usize = 32;
/// How many conflicting paths an error message names.
const CONFLICTS_SHOWN_MAX: usize = 10;

/// What the document says a node is. Container and TTL nodes look like persistent nodes to
/// a client (their stat does not tell), so they are exported, and imported, as persistent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    #[default]
    Persistent,
    Ephemeral,
}

/// How a node's `"data"` string holds its bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Encoding {
    #[default]
    Utf8,
    Base64,
}

/// One node as exported (field order is the order on the line).
#[derive(Serialize)]
struct ExportEntry<'a> {
    path: &'a str,
    kind: Kind,
    data: String,
    encoding: &'static str,
    stat: ExportStat,
}

/// The stat fields a human wants to see.
#[derive(Serialize)]
struct ExportStat {
    version: i32,
    ctime: String,
    mtime: String,
    ctime_ms: u64,
    mtime_ms: u64,
}

/// The document as read; unknown fields are ignored.
#[derive(Deserialize)]
struct Document {
    format: String,
    version: u64,
    nodes: Vec<ImportEntry>,
}

/// One node as read. `stat` and unknown fields are ignored.
#[derive(Deserialize)]
struct ImportEntry {
    path: String,
    #[serde(default)]
    kind: Kind,
    #[serde(default)]
    data: String,
    #[serde(default)]
    encoding: Encoding,
}

/// A node to import: where it goes and its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub path: String,
    pub data: Vec<u8>,
    pub kind: Kind,
}

/// The first line of a document: everything before the first node.
fn header_line(root: &str) -> String {
    format!(r#"{{"format":"{FORMAT}","version":{FORMAT_VERSION},"root":{},"nodes":["#, serde_json::Value::from(root))
}

/// A node as one line of a document (no separator, no newline).
fn entry_line(path: &str, data: &[u8], stat: &Stat) -> String {
    let (data, encoding) = output::data_json(data);
    let kind = if stat.ephemeral_owner.0 == 0 { Kind::Persistent } else { Kind::Ephemeral };
    let stat = ExportStat {
        version: stat.version,
        ctime: output::rfc3339(stat.ctime_ms),
        mtime: output::rfc3339(stat.mtime_ms),
        ctime_ms: stat.ctime_ms,
        mtime_ms: stat.mtime_ms,
    };
    let entry = ExportEntry { path, kind, data, encoding, stat };
    serde_json::to_string(&entry).unwrap_or_else(|e| unreachable!("an entry always serializes: {e}"))
}

/// Writes the subtree under `root` to stdout as one document, depth first with an explicit
/// stack, children in name order. Ephemeral nodes are left out unless `with_ephemeral` (a
/// note on stderr says how many). Nodes deleted while walking are skipped; a missing `root`
/// is `NoNode` before anything is written. The walk is not a snapshot: a tree that changes
/// meanwhile is exported as each node was when it was read.
pub async fn export(client: &Client, root: &str, with_ephemeral: bool) -> Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let mut stack = vec![root.to_owned()];
    let (mut written, mut skipped) = (0_usize, 0_usize);
    while let Some(node) = stack.pop() {
        let (got, children) = tokio::join!(client.get(&node), client.children(&node));
        let (data, stat, children) = match (got, children) {
            (Ok((data, stat)), Ok(children)) => (data, stat, children),
            (Err(e), _) | (_, Err(e)) if e.is_no_node() && node != root => continue,
            (Err(e), _) | (_, Err(e)) => return Err(at(&node, e)),
        };
        if stat.ephemeral_owner.0 != 0 && !with_ephemeral {
            skipped += 1;
            continue;
        }
        let separator = if written == 0 { header_line(root) } else { ",".to_owned() };
        write!(out, "{separator}\n{}", entry_line(&node, &data, &stat))?;
        written += 1;
        stack.extend(children.iter().rev().map(|child| path::join(&node, child)));
    }
    if written == 0 {
        write!(out, "{}", header_line(root))?;
    }
    writeln!(out, "\n]}}")?;
    out.flush()?;
    if skipped > 0 {
        eprintln!("baton: left out {skipped} ephemeral node(s); --ephemeral includes them");
    }
    Ok(())
}

/// Reads a document from `input` (at most [`DOCUMENT_BYTES_MAX`] bytes) and returns its
/// nodes, moved under `under` if given. See [`parse`].
pub fn read_document(input: impl Read, under: Option<&str>) -> Result<Vec<Node>> {
    let mut text = String::new();
    input.take(DOCUMENT_BYTES_MAX + 1).read_to_string(&mut text).context("reading the document from stdin")?;
    if text.len() as u64 > DOCUMENT_BYTES_MAX {
        bail!("the document on stdin is larger than {DOCUMENT_BYTES_MAX} bytes");
    }
    parse(&text, under)
}

/// The nodes of document `text`, each path moved under `under` if given (`/a` becomes
/// `UNDER/a`, `/` becomes `UNDER`).
///
/// # Errors
/// Not JSON or not this format, an unsupported version, an invalid or repeated path, data
/// that is not valid base64: each with a message naming the node.
pub fn parse(text: &str, under: Option<&str>) -> Result<Vec<Node>> {
    if let Some(under) = under {
        path::validate(under).with_context(|| format!("--under {under:?}"))?;
    }
    let document: Document = serde_json::from_str(text).context("stdin is not a baton export document")?;
    if document.format != FORMAT {
        bail!("stdin is not a baton export document: \"format\" is {:?}, not {FORMAT:?}", document.format);
    }
    if document.version != FORMAT_VERSION {
        bail!(
            "export format version {} is not supported (this baton reads version {FORMAT_VERSION})",
            document.version
        );
    }
    let mut seen = BTreeSet::new();
    let mut nodes = Vec::with_capacity(document.nodes.len());
    for (index, entry) in document.nodes.into_iter().enumerate() {
        let node = node(entry, under).with_context(|| format!("node {index} of the document"))?;
        if !seen.insert(node.path.clone()) {
            bail!("node {index} of the document: {} appears twice", node.path);
        }
        nodes.push(node);
    }
    Ok(nodes)
}

/// One entry checked, decoded and moved under `under`.
fn node(entry: ImportEntry, under: Option<&str>) -> Result<Node> {
    path::validate(&entry.path).with_context(|| format!("invalid path {:?}", entry.path))?;
    let data = match entry.encoding {
        Encoding::Utf8 => entry.data.into_bytes(),
        Encoding::Base64 => baton::proto::base64::decode(&entry.data)
            .with_context(|| format!("{}: \"data\" is not valid base64", entry.path))?,
    };
    let path = match under {
        None | Some("/") => entry.path,
        Some(under) if entry.path == "/" => under.to_owned(),
        Some(under) => format!("{under}{}", entry.path),
    };
    path::validate(&path).with_context(|| format!("invalid path {path:?} under --under"))?;
    Ok(Node { path, data, kind: entry.kind })
}

/// Every path an import touches, parents first: the nodes' own and their ancestors' (the
/// root `/` only if it is itself a node).
fn touched_paths(nodes: &[Node]) -> Vec<String> {
    let mut touched = BTreeSet::new();
    for node in nodes {
        for p in path::self_and_ancestors(&node.path) {
            if p != "/" || p == node.path {
                touched.insert((path::depth(p), p.to_owned()));
            }
        }
    }
    touched.into_iter().map(|(_, p)| p).collect()
}

/// The writes of an import, parents first, each with its path: a create for a node that
/// does not exist yet (an empty one for a missing parent), a set for one that exists when
/// `overwrite`; existing parents are left alone.
///
/// # Errors
/// The paths of the nodes that already exist, when not `overwrite`.
fn plan(nodes: &[Node], existing: &BTreeSet<String>, overwrite: bool) -> Result<Vec<MultiOp>, Vec<String>> {
    let by_path: BTreeMap<&str, &Node> = nodes.iter().map(|n| (n.path.as_str(), n)).collect();
    let mut ops = Vec::new();
    let mut conflicts = Vec::new();
    for p in touched_paths(nodes) {
        let exists = existing.contains(&p);
        match by_path.get(p.as_str()) {
            Some(node) if !exists => ops.push(create(p, node.data.clone())),
            Some(node) if overwrite => ops.push(MultiOp::Set { path: p, data: Some(node.data.clone()), version: None }),
            Some(_) => conflicts.push(p),
            None if !exists => ops.push(create(p, Vec::new())),
            None => {}
        }
    }
    if conflicts.is_empty() { Ok(ops) } else { Err(conflicts) }
}

fn create(path: String, data: Vec<u8>) -> MultiOp {
    MultiOp::Create(CreateRequest {
        path,
        data: Some(data),
        kind: CreateKind::Persistent,
        sequential: false,
        acl: Vec::new(),
    })
}

/// The path a write of [`plan`] is about.
fn op_path(op: &MultiOp) -> &str {
    match op {
        MultiOp::Create(CreateRequest { path, .. }) | MultiOp::Set { path, .. } => path,
        _ => "",
    }
}

/// What a write costs in a batch.
fn op_bytes(op: &MultiOp) -> usize {
    let data = match op {
        MultiOp::Create(CreateRequest { data, .. }) | MultiOp::Set { data, .. } => data.as_ref().map_or(0, Vec::len),
        _ => 0,
    };
    op_path(op).len() + data + OP_OVERHEAD_BYTES
}

/// `ops` cut, in order, into batches of at most [`BATCH_OPS_MAX`] writes and
/// [`BATCH_BYTES_MAX`] bytes (a larger single write alone).
fn batches(ops: Vec<MultiOp>) -> Vec<Vec<MultiOp>> {
    let mut batches: Vec<Vec<MultiOp>> = Vec::new();
    let mut bytes = 0;
    for op in ops {
        let cost = op_bytes(&op);
        match batches.last_mut() {
            Some(batch) if batch.len() < BATCH_OPS_MAX && bytes + cost <= BATCH_BYTES_MAX => {
                bytes += cost;
                batch.push(op);
            }
            _ => {
                bytes = cost;
                batches.push(vec![op]);
            }
        }
    }
    batches
}

/// Creates `nodes` (parents first, missing parents created empty), or with `overwrite` sets
/// the data of those that exist. Ephemeral nodes are skipped (they would vanish with this
/// command's session). Nothing is written if a node exists and not `overwrite`. The writes
/// go in `multi`s of [`BATCH_OPS_MAX`] / [`BATCH_BYTES_MAX`]: one batch is all or nothing;
/// if a later batch fails, the error says how many nodes were imported before it.
pub async fn import(client: &Client, nodes: Vec<Node>, overwrite: bool) -> Result<()> {
    let (mut nodes, ephemeral): (Vec<Node>, Vec<Node>) = nodes.into_iter().partition(|n| n.kind == Kind::Persistent);
    if !ephemeral.is_empty() {
        eprintln!("baton: skipping {} ephemeral node(s): they would vanish with this session", ephemeral.len());
    }
    // The root always exists: the same data there is no conflict.
    if let Some(i) = nodes.iter().position(|n| n.path == "/") {
        let (data, _) = client.get("/").await.map_err(|e| at("/", e))?;
        if data == nodes[i].data {
            nodes.remove(i);
        }
    }
    let mut existing = BTreeSet::new();
    for p in touched_paths(&nodes) {
        if client.exists(&p).await.map_err(|e| at(&p, e))?.is_some() {
            existing.insert(p);
        }
    }
    let ops = plan(&nodes, &existing, overwrite).map_err(|conflicts| conflict_error(&conflicts))?;
    let total = ops.len();
    let (mut done, mut updated) = (0, 0);
    for batch in batches(ops) {
        let paths: Vec<String> = batch.iter().map(|op| op_path(op).to_owned()).collect();
        let sets = batch.iter().filter(|op| matches!(op, MultiOp::Set { .. })).count();
        if let Err(e) = client.multi(batch).await {
            let failed = match &e {
                baton::Error::MultiFailed { index, .. } => paths.get(*index).map_or("?", String::as_str),
                _ => paths.first().map_or("?", String::as_str),
            };
            let err = at(failed, e);
            return Err(match done {
                0 => err.context("nothing was imported"),
                _ => err.context(format!("imported {done} of {total} nodes (all before {failed}), then failed")),
            });
        }
        done += paths.len();
        updated += sets;
    }
    eprintln!("baton: imported {total} node(s): {} created, {updated} updated", total - updated);
    Ok(())
}

/// The error for nodes that already exist: `NodeExists` (exit status 4), naming them.
fn conflict_error(conflicts: &[String]) -> anyhow::Error {
    let mut shown = conflicts.iter().take(CONFLICTS_SHOWN_MAX).cloned().collect::<Vec<_>>().join(", ");
    if conflicts.len() > CONFLICTS_SHOWN_MAX {
        shown = format!("{shown}, ... ({} in all)", conflicts.len());
    }
    let message = format!("{shown}; nothing was imported (--overwrite sets their data)");
    anyhow::Error::new(baton::Error::Server { code: ErrorCode::NodeExists, message })
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton::{SessionId, Zxid};
    use serde_json::{Value, json};

    fn stat(version: i32, owner: u64) -> Stat {
        Stat {
            czxid: Zxid(1),
            mzxid: Zxid(2),
            pzxid: Zxid(1),
            ctime_ms: 1_700_000_000_123,
            mtime_ms: 1_700_000_000_456,
            version,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: SessionId(owner),
            data_length: 0,
            num_children: 0,
        }
    }

    fn node(path: &str, data: &[u8]) -> Node {
        Node { path: path.to_owned(), data: data.to_vec(), kind: Kind::Persistent }
    }

    fn document(nodes: &[&str]) -> String {
        format!("{}\n{}\n]}}\n", header_line("/"), nodes.join(",\n"))
    }

    #[test]
    fn entries_keep_text_as_text_and_binary_as_base64() {
        let text: Value = serde_json::from_str(&entry_line("/a", "héllo".as_bytes(), &stat(3, 0))).unwrap();
        assert_eq!(
            text,
            json!({"path": "/a", "kind": "persistent", "data": "héllo", "encoding": "utf8", "stat": {
                "version": 3, "ctime": "2023-11-14T22:13:20.123Z", "mtime": "2023-11-14T22:13:20.456Z",
                "ctime_ms": 1_700_000_000_123_u64, "mtime_ms": 1_700_000_000_456_u64}})
        );
        let binary: Value = serde_json::from_str(&entry_line("/b", &[0xff, 0, 1], &stat(0, 0x42))).unwrap();
        assert_eq!(
            (&binary["data"], &binary["encoding"], &binary["kind"]),
            (&json!("/wAB"), &json!("base64"), &json!("ephemeral"))
        );
        assert!(entry_line("/c", b"", &stat(0, 0)).starts_with(r#"{"path":"/c","kind":"persistent","data":"","#));
    }

    #[test]
    fn an_exported_document_parses_back_to_the_same_nodes() {
        let nodes = [node("/", b""), node("/a", b"text\n"), node("/a/b", &[0xff, 0xfe, 0]), node("/a/c", b"")];
        let lines: Vec<String> = nodes.iter().map(|n| entry_line(&n.path, &n.data, &stat(0, 0))).collect();
        let text = document(&lines.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(parse(&text, None).unwrap(), nodes);
        let moved = parse(&text, Some("/restore")).unwrap();
        let paths: Vec<&str> = moved.iter().map(|n| n.path.as_str()).collect();
        assert_eq!(paths, ["/restore", "/restore/a", "/restore/a/b", "/restore/a/c"]);
        assert_eq!(parse(&document(&[]), None).unwrap(), []);
    }

    #[test]
    fn parse_defaults_to_empty_utf8_persistent_data() {
        let nodes = parse(&document(&[r#"{"path": "/x"}"#, r#"{"path": "/y", "kind": "ephemeral"}"#]), None).unwrap();
        assert_eq!(nodes[0], node("/x", b""));
        assert_eq!(nodes[1].kind, Kind::Ephemeral);
    }

    #[test]
    fn parse_rejects_what_it_cannot_import_with_a_message() {
        let cases = [
            ("", "not a baton export document"),
            ("[1, 2]", "not a baton export document"),
            (r#"{"format": "other", "version": 1, "nodes": []}"#, "\"format\" is \"other\""),
            (r#"{"format": "baton-export", "version": 2, "nodes": []}"#, "version 2 is not supported"),
            (&document(&[r#"{"path": "a"}"#]), "node 0 of the document: invalid path \"a\""),
            (&document(&[r#"{"path": "/a/../b"}"#]), "invalid path"),
            (&document(&[r#"{"path": "/a"}"#, r#"{"path": "/a"}"#]), "node 1 of the document: /a appears twice"),
            (&document(&[r#"{"path": "/a", "data": "!!", "encoding": "base64"}"#]), "not valid base64"),
            (&document(&[r#"{"path": "/a", "encoding": "hex"}"#]), "unknown variant `hex`"),
            (&document(&[r#"{"path": "/a", "kind": "container"}"#]), "unknown variant `container`"),
        ];
        for (text, expected) in cases {
            let message = format!("{:#}", parse(text, None).unwrap_err());
            assert!(message.contains(expected), "{text:?}: {message:?} lacks {expected:?}");
        }
        let message = format!("{:#}", parse(&document(&[]), Some("restore")).unwrap_err());
        assert!(message.contains("--under \"restore\""), "{message}");
    }

    #[test]
    fn plan_creates_parents_first_and_missing_parents_empty() {
        let nodes = [node("/a/b/c", b"c"), node("/a", b"a"), node("/x", b"")];
        let ops = plan(&nodes, &BTreeSet::new(), false).unwrap();
        let paths: Vec<&str> = ops.iter().map(op_path).collect();
        assert_eq!(paths, ["/a", "/x", "/a/b", "/a/b/c"]);
        assert_eq!(ops[2], create("/a/b".to_owned(), Vec::new()));
        assert_eq!(ops[0], create("/a".to_owned(), b"a".to_vec()));
    }

    #[test]
    fn plan_refuses_existing_nodes_unless_overwriting() {
        let nodes = [node("/a", b"a"), node("/a/b", b"b"), node("/p/q", b"q")];
        let existing: BTreeSet<String> = ["/a", "/a/b", "/p"].map(str::to_owned).into();
        assert_eq!(plan(&nodes, &existing, false).unwrap_err(), ["/a", "/a/b"]);
        let ops = plan(&nodes, &existing, true).unwrap();
        assert_eq!(
            ops,
            [
                MultiOp::Set { path: "/a".into(), data: Some(b"a".to_vec()), version: None },
                MultiOp::Set { path: "/a/b".into(), data: Some(b"b".to_vec()), version: None },
                create("/p/q".to_owned(), b"q".to_vec()),
            ]
        );
    }

    #[test]
    fn the_root_is_touched_only_as_a_node_of_its_own() {
        assert_eq!(touched_paths(&[node("/a", b"")]), ["/a"]);
        assert_eq!(touched_paths(&[node("/a", b""), node("/", b"r")]), ["/", "/a"]);
    }

    #[test]
    fn batches_are_bounded_by_count_and_bytes_and_keep_order() {
        let small: Vec<MultiOp> = (0..2500).map(|i| create(format!("/n{i:05}"), Vec::new())).collect();
        let cut = batches(small);
        assert_eq!(cut.iter().map(Vec::len).collect::<Vec<_>>(), [1000, 1000, 500]);
        assert_eq!(op_path(&cut[1][0]), "/n01000");
        let big = vec![
            create("/a".into(), vec![0; 300 * 1024]),
            create("/b".into(), vec![0; 300 * 1024]),
            create("/c".into(), vec![0; 900 * 1024]),
            create("/d".into(), Vec::new()),
        ];
        let cut = batches(big);
        assert_eq!(
            cut.iter().map(|b| b.iter().map(op_path).collect::<Vec<_>>()).collect::<Vec<_>>(),
            [vec!["/a"], vec!["/b"], vec!["/c"], vec!["/d"]]
        );
        assert!(batches(Vec::new()).is_empty());
    }

    #[test]
    fn conflicts_exit_with_status_4_and_name_the_nodes() {
        let many: Vec<String> = (0..12).map(|i| format!("/n{i}")).collect();
        let err = conflict_error(&many);
        assert_eq!(crate::exit::exit_status(&err), crate::exit::CONFLICT);
        let message = err.to_string();
        assert!(message.starts_with("node exists: /n0, /n1,"), "{message}");
        assert!(message.contains("... (12 in all); nothing was imported"), "{message}");
    }
}
