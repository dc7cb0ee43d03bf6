//! Negative controls: deliberately broken behaviours that the reliability tests must catch,
//! proving they can fail. Compiled in only with the `negative-controls` feature (the test
//! build), and even then off unless `BATON_NEGATIVE_CONTROLS` names them, comma-separated:
//!
//! - `stale-reads`: `get` answers with the value a node had before its last change;
//! - `skip-fencing`: a fencing check (`HoldsLock`) always passes.
//!
//! (Acknowledging before fsync is `Store::skip_fsync`; an unbounded output buffer is a
//! configuration, `outbound_bytes_max`.)

/// Which controls are on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NegativeControls {
    pub stale_reads: bool,
    pub skip_fencing: bool,
}

impl NegativeControls {
    /// From `BATON_NEGATIVE_CONTROLS`, read (and warned about) once per process; always none
    /// without the feature.
    pub fn from_env() -> NegativeControls {
        static READ: std::sync::OnceLock<NegativeControls> = std::sync::OnceLock::new();
        *READ.get_or_init(Self::read_env)
    }

    fn read_env() -> NegativeControls {
        let mut controls = NegativeControls::default();
        if cfg!(feature = "negative-controls")
            && let Ok(names) = std::env::var("BATON_NEGATIVE_CONTROLS")
        {
            for name in names.split(',').map(str::trim) {
                match name {
                    "stale-reads" => controls.stale_reads = true,
                    "skip-fencing" => controls.skip_fencing = true,
                    "" => {}
                    other => tracing::warn!(control = other, "unknown negative control ignored"),
                }
            }
        }
        if controls != NegativeControls::default() {
            tracing::warn!(?controls, "NEGATIVE CONTROLS ON: this daemon is deliberately broken, for tests only");
        }
        controls
    }
}
