//! A round that only puts waiters in line waits a little for company before its commit.
//!
//! A `CreateInLine` that lands behind others is in no hurry: its session can do nothing but
//! wait for the nodes ahead of it to go. Committed alone, it keeps the device busy for a
//! whole commit, and a release that comes meanwhile (the next holder's turn) waits for that
//! commit before its own. Under contention the two come close together: the releaser rejoins
//! the line while the next holder, just told its turn, releases. So such a round waits for
//! the next input, up to about one commit's duration (measured, and capped by
//! configuration), and commits together with whatever came: no request waits longer than a
//! commit would have made it wait, and the lock's hand-offs need one commit, not two
//! (docs/BENCHMARKS.md, "Optimisations"). Any other request, or any other input, makes the
//! round urgent as usual.

use std::time::Duration;

/// The weight of the newest commit in the running mean of their durations, as a divisor.
const MEAN_WEIGHT: u32 = 8;

/// The wait's state: whether the round so far holds only waiters joining a line, and how
/// long commits take.
#[derive(Debug)]
pub(super) struct LineWait {
    max: Duration,
    commit_mean: Duration,
    only_joins: bool,
}

impl LineWait {
    /// `max` caps the wait; zero turns it off.
    pub fn new(max: Duration) -> Self {
        LineWait { max, commit_mean: Duration::ZERO, only_joins: false }
    }

    /// A new round: nothing in it yet.
    pub fn begin_round(&mut self) {
        self.only_joins = true;
    }

    /// The round took an input: a request whose only output is the reply of a waiter joined
    /// behind others (`joined_behind`), or anything else.
    pub fn took(&mut self, joined_behind: bool) {
        self.only_joins &= joined_behind;
    }

    /// A commit took `elapsed`.
    pub fn committed(&mut self, elapsed: Duration) {
        self.commit_mean = if self.commit_mean.is_zero() {
            elapsed
        } else {
            (self.commit_mean * (MEAN_WEIGHT - 1) + elapsed) / MEAN_WEIGHT
        };
    }

    /// How long the round may wait for another input before it commits: `None` unless it
    /// holds only joins behind others (and some, `has_writes`).
    pub fn window(&self, has_writes: bool) -> Option<Duration> {
        let window = self.commit_mean.min(self.max);
        (self.only_joins && has_writes && !window.is_zero()).then_some(window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn measured(max: Duration, commits: &[Duration]) -> LineWait {
        let mut wait = LineWait::new(max);
        for &commit in commits {
            wait.committed(commit);
        }
        wait
    }

    #[test]
    fn only_a_round_of_joins_behind_others_waits() {
        let mut wait = measured(MS, &[MS / 4]);
        wait.begin_round();
        wait.took(true);
        wait.took(true);
        assert_eq!(wait.window(true), Some(MS / 4), "two waiters joined");
        assert_eq!(wait.window(false), None, "nothing to commit");
        wait.took(false);
        assert_eq!(wait.window(true), None, "another request came");
        wait.begin_round();
        assert_eq!(wait.window(true), Some(MS / 4), "a new round starts afresh");
    }

    #[test]
    fn the_wait_is_about_one_commit_and_at_most_the_cap() {
        let mut wait = measured(MS, &[MS / 2, MS / 2, MS / 2]);
        wait.begin_round();
        assert_eq!(wait.window(true), Some(MS / 2));
        for _ in 0..100 {
            wait.committed(MS / 10);
        }
        let window = wait.window(true).unwrap();
        assert!(window >= MS / 10 && window < MS / 9, "follows the commits: {window:?}");
        wait.committed(100 * MS);
        assert_eq!(wait.window(true), Some(MS), "capped");
    }

    #[test]
    fn no_wait_before_a_commit_is_measured_or_when_turned_off() {
        let mut wait = LineWait::new(MS);
        wait.begin_round();
        assert_eq!(wait.window(true), None, "no commit measured yet");
        let mut off = measured(Duration::ZERO, &[MS]);
        off.begin_round();
        assert_eq!(off.window(true), None, "a cap of zero turns it off");
    }
}
