//! Waiting for the engine's next input: a short poll before the thread sleeps.
//!
//! A thread asleep on its channel must be woken by the sender, and on the virtual machines
//! this project runs on the wake-up is slow: a futex wake, an interrupt to the sleeping CPU
//! and a VM exit, tens of microseconds on the path of every request that finds the engine
//! asleep (what polling changed: docs/BENCHMARKS.md, "Optimisations"). The poll yields the
//! CPU between looks, so runnable threads (the tokio workers, clients on a small machine)
//! go first, and it ends as soon as input comes; an idle daemon sleeps.

use std::time::{Duration, Instant};
use tokio::sync::mpsc::Receiver;
use tokio::sync::mpsc::error::TryRecvError;

/// The next input: polled for up to `spin`, then waited for asleep. `None` once every
/// sender is gone.
pub fn next_input<T>(inputs: &mut Receiver<T>, spin: Duration) -> Option<T> {
    if !spin.is_zero() {
        let until = Instant::now() + spin;
        loop {
            match inputs.try_recv() {
                Ok(input) => return Some(input),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) if Instant::now() >= until => break,
                Err(TryRecvError::Empty) => std::thread::yield_now(),
            }
        }
    }
    inputs.blocking_recv()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    #[test]
    fn an_input_comes_whether_it_was_waiting_arrives_during_the_poll_or_after_it() {
        for spin in [Duration::ZERO, Duration::from_micros(100), Duration::from_millis(50)] {
            let (tx, mut rx) = mpsc::channel(4);
            tx.try_send(1).unwrap();
            assert_eq!(next_input(&mut rx, spin), Some(1), "queued already, spin {spin:?}");
            let sender = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(10));
                tx.blocking_send(2).unwrap();
                std::thread::sleep(Duration::from_millis(100));
                tx.blocking_send(3).unwrap();
            });
            assert_eq!(next_input(&mut rx, spin), Some(2), "sent 10 ms later, spin {spin:?}");
            assert_eq!(next_input(&mut rx, spin), Some(3), "sent after the poll gave up, spin {spin:?}");
            sender.join().unwrap();
            assert_eq!(next_input(&mut rx, spin), None, "every sender gone, spin {spin:?}");
        }
    }
}
