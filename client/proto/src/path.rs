//! Node paths: absolute, `/`-separated UTF-8 with no empty, `.` or `..` segments, no trailing
//! `/` (except the root), no NUL or control characters, at most [`PATH_LEN_MAX`] bytes.

use thiserror::Error;

/// The longest path accepted, in bytes.
pub const PATH_LEN_MAX: usize = 1024;

/// Why a path is invalid.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PathError {
    #[error("path is empty")]
    Empty,
    #[error("path must start with '/'")]
    NotAbsolute,
    #[error("path is {len} bytes, longer than {max}")]
    TooLong { len: usize, max: usize },
    #[error("path has an empty segment or a trailing '/'")]
    EmptySegment,
    #[error("path has a '.' or '..' segment")]
    RelativeSegment,
    #[error("path has a NUL or control character")]
    ControlCharacter,
}

/// Checks `path` against the rules above.
pub fn validate(path: &str) -> Result<(), PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if path.len() > PATH_LEN_MAX {
        return Err(PathError::TooLong { len: path.len(), max: PATH_LEN_MAX });
    }
    if path == "/" {
        return Ok(());
    }
    if path.chars().any(char::is_control) {
        return Err(PathError::ControlCharacter);
    }
    for segment in path[1..].split('/') {
        match segment {
            "" => return Err(PathError::EmptySegment),
            "." | ".." => return Err(PathError::RelativeSegment),
            _ => {}
        }
    }
    Ok(())
}

/// The parent of a valid path; `None` for the root.
pub fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

/// The last segment of a valid path; empty for the root.
pub fn name(path: &str) -> &str {
    path.rfind('/').map_or(path, |i| &path[i + 1..])
}

/// `parent` joined with a child `name`.
pub fn join(parent: &str, name: &str) -> String {
    if parent == "/" { format!("/{name}") } else { format!("{parent}/{name}") }
}

/// Whether `path` is `ancestor` itself or lies beneath it.
pub fn is_within(path: &str, ancestor: &str) -> bool {
    ancestor == "/"
        || path == ancestor
        || (path.starts_with(ancestor) && path.as_bytes().get(ancestor.len()) == Some(&b'/'))
}

/// Number of segments: 0 for the root.
pub fn depth(path: &str) -> usize {
    if path == "/" { 0 } else { path.matches('/').count() }
}

/// The path itself, then each ancestor up to and including the root.
pub fn self_and_ancestors(path: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(path), |p| parent(p))
}

/// The name a sequential node gets: `base` with the parent's `cversion` as a zero-padded
/// 10-digit suffix, as ZooKeeper formats it (`%010d`, so a negative counter keeps its sign).
pub fn sequential_name(base: &str, parent_cversion: i32) -> String {
    format!("{base}{parent_cversion:010}")
}

/// The sequence number a sequential node's name ends with (the 10-character `%010d` suffix),
/// if it has one. Lock waiters, queue items and candidates are ordered by it.
pub fn sequence_of(name: &str) -> Option<i32> {
    let suffix = name.get(name.len().checked_sub(10)?..)?;
    suffix.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_well_formed_paths() {
        for p in ["/", "/a", "/a/b", "/with space/ünïcode", "/a.b/..c/d..", "/lock-0000000001"] {
            assert_eq!(validate(p), Ok(()), "{p}");
        }
    }

    #[test]
    fn rejects_malformed_paths() {
        let cases: &[(&str, PathError)] = &[
            ("", PathError::Empty),
            ("a", PathError::NotAbsolute),
            ("/a/", PathError::EmptySegment),
            ("//", PathError::EmptySegment),
            ("/a//b", PathError::EmptySegment),
            ("/a/./b", PathError::RelativeSegment),
            ("/..", PathError::RelativeSegment),
            ("/a\0b", PathError::ControlCharacter),
            ("/a\nb", PathError::ControlCharacter),
        ];
        for (p, e) in cases {
            assert_eq!(validate(p).as_ref(), Err(e), "{p:?}");
        }
        let long = format!("/{}", "x".repeat(PATH_LEN_MAX));
        assert!(matches!(validate(&long), Err(PathError::TooLong { .. })));
    }

    #[test]
    fn navigates_parents_and_names() {
        assert_eq!(parent("/"), None);
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(name("/a/b"), "b");
        assert_eq!(name("/"), "");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert_eq!(self_and_ancestors("/a/b").collect::<Vec<_>>(), ["/a/b", "/a", "/"]);
        assert_eq!(depth("/"), 0);
        assert_eq!(depth("/a/b"), 2);
    }

    #[test]
    fn within_respects_segment_boundaries() {
        assert!(is_within("/a/b", "/a"));
        assert!(is_within("/a", "/a"));
        assert!(is_within("/a", "/"));
        assert!(!is_within("/ab", "/a"));
    }

    #[test]
    fn sequence_is_read_back_from_the_suffix() {
        assert_eq!(sequence_of("lock-0000000042"), Some(42));
        assert_eq!(sequence_of("0000000000"), Some(0));
        assert_eq!(sequence_of(name(&sequential_name("/q/x-", -5))), Some(-5));
        assert_eq!(sequence_of("short-12"), None);
        assert_eq!(sequence_of("lock-00000000ab"), None);
    }

    #[test]
    fn sequential_suffix_is_ten_zero_padded_digits() {
        assert_eq!(sequential_name("/q/item-", 7), "/q/item-0000000007");
        assert_eq!(sequential_name("/q/", 2_147_483_647), "/q/2147483647");
        assert_eq!(sequential_name("/q/", -2_147_483_648), "/q/-2147483648");
    }
}
