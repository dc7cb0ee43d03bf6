//! Binding the Unix socket safely: a private runtime directory, no clobbering of a live
//! daemon's socket, and owner-and-group permissions.

use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use tokio::net::UnixListener;

/// Socket file mode: the owner and the group (the `baton` group, as a service) may connect.
const SOCKET_MODE: u32 = 0o660;
/// Mode of a runtime directory the daemon creates for its socket.
const RUNTIME_DIR_MODE: u32 = 0o750;

/// Binds `path`, creating its directory if needed. A leftover socket file nobody answers on
/// is replaced; one a live daemon answers on is an error.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::DirBuilder::new().recursive(true).mode(RUNTIME_DIR_MODE).create(dir)?;
        // The daemon's umask (0077) masked the group bits off; the group needs to traverse.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(RUNTIME_DIR_MODE))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{} is in use by a running daemon", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))?;
    Ok(listener)
}
