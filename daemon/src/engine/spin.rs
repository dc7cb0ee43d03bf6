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
    if !spin.is_zero()
        && let Some(input) = poll_until(inputs, Instant::now() + spin)
    {
        return Some(input);
    }
    inputs.blocking_recv()
}

/// The next input if one comes before `deadline`, polled, yielding the CPU between looks.
/// `None` once the deadline passes or every sender is gone.
pub fn poll_until<T>(inputs: &mut Receiver<T>, deadline: Instant) -> Option<T> {
    loop {
        match inputs.try_recv() {
            Ok(input) => return Some(input),
            Err(TryRecvError::Empty) if Instant::now() < deadline => std::thread::yield_now(),
            Err(_) => return None,
        }
    }
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

    #[test]
    fn a_poll_ends_with_an_input_its_deadline_or_the_last_sender() {
        let (tx, mut rx) = mpsc::channel(4);
        let soon = || Instant::now() + Duration::from_millis(5);
        tx.try_send(1).unwrap();
        assert_eq!(poll_until(&mut rx, soon()), Some(1));
        let started = Instant::now();
        assert_eq!(poll_until(&mut rx, soon()), None, "nothing came");
        assert!(started.elapsed() >= Duration::from_millis(5), "it polled until the deadline");
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            tx.blocking_send(2).unwrap();
        });
        assert_eq!(poll_until(&mut rx, Instant::now() + Duration::from_secs(30)), Some(2), "sent 10 ms later");
        sender.join().unwrap();
        assert_eq!(poll_until(&mut rx, Instant::now() + Duration::from_secs(30)), None, "every sender gone");
    }
}
