//! Leader election by monotonic time (pure): when this process may write, and what its next
//! attempt on the Lease is. The shell ([`crate::shell::leader`]) reads and writes the Lease and
//! feeds the instants in; nothing here reads a clock.
//!
//! The rules follow client-go's leaderelection: a candidate counts another's lease from when *it*
//! saw the record change (never from the holder's `renewTime`, a wall clock of another machine),
//! and the holder stops writing a margin before the lease could have passed to someone else.

use std::time::Duration;

use tokio::time::Instant;

/// The timings derived from `--lease-duration-seconds` (client-go's 15 s / 10 s / 2 s at 15).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTiming {
    /// How long a lease lasts after its renewal, for the other candidates.
    pub duration: Duration,
    /// How long after the last successful renewal was *sent* this process still writes:
    /// `duration` minus a margin for clock-rate differences and requests in transit.
    pub renew_deadline: Duration,
    /// How often the lease is renewed, or tried for.
    pub retry_period: Duration,
    /// Longest a single attempt (read, then renew or acquire) may take before it counts as failed.
    pub attempt_timeout: Duration,
}

impl LeaseTiming {
    /// Timings for a lease of `seconds` (at least 3).
    pub fn of_seconds(seconds: u64) -> Self {
        let duration = Duration::from_secs(seconds.max(3));
        let renew_deadline = duration * 2 / 3;
        Self {
            duration,
            renew_deadline,
            retry_period: (duration * 2 / 15).max(Duration::from_millis(500)),
            attempt_timeout: renew_deadline / 2,
        }
    }
}

/// Whether this process may write now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holding {
    /// Runs without election (`--leader-elect=false`): always.
    Alone,
    /// Holds the lease until this instant, unless a renewal moves it later.
    Until(Instant),
    /// Does not hold the lease.
    Not,
}

impl Holding {
    /// Held after a renewal (or acquisition) whose request was sent at `sent`: the lease cannot
    /// have passed to anyone before `sent + duration`, and this process stops `margin` earlier.
    pub fn renewed(sent: Instant, timing: &LeaseTiming) -> Self {
        Holding::Until(sent + timing.renew_deadline)
    }

    /// Whether writes may go out at `now`.
    pub fn held_at(&self, now: Instant) -> bool {
        match self {
            Holding::Alone => true,
            Holding::Until(until) => now < *until,
            Holding::Not => false,
        }
    }
}

/// The part of a Lease's spec the election reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub holder: Option<String>,
    pub duration_seconds: i32,
    /// As the holder wrote it; compared only for change, never read as a time.
    pub renew_time: Option<String>,
}

/// A record and the local instant it was first seen as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub record: Record,
    pub at: Instant,
}

/// Keeps `previous` when the record has not changed (its lease runs from when it was first seen),
/// else starts counting at `now` (after the read returned: the latest instant, the safe side).
pub fn observe(previous: Option<Observed>, record: Record, now: Instant) -> Observed {
    match previous {
        Some(seen) if seen.record == record => seen,
        _ => Observed { record, at: now },
    }
}

/// What to do with the lease as observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// It is ours: renew it.
    Renew,
    /// Free, or its holder let it run out: take it.
    Acquire,
    /// Another holds it: wait.
    Wait,
}

/// The next step for `identity`, given the lease as observed.
pub fn next_step(observed: &Observed, identity: &str, now: Instant) -> Step {
    match observed.record.holder.as_deref() {
        Some(holder) if holder == identity => Step::Renew,
        None | Some("") => Step::Acquire,
        Some(_) => {
            let seconds = u64::try_from(observed.record.duration_seconds).unwrap_or(0);
            if now >= observed.at + Duration::from_secs(seconds) {
                Step::Acquire
            } else {
                Step::Wait
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(holder: &str, renew: &str) -> Record {
        Record {
            holder: Some(holder.to_string()),
            duration_seconds: 15,
            renew_time: Some(renew.to_string()),
        }
    }

    #[test]
    fn timings_follow_client_go_at_fifteen_seconds() {
        let t = LeaseTiming::of_seconds(15);
        assert_eq!(t.renew_deadline, Duration::from_secs(10));
        assert_eq!(t.retry_period, Duration::from_secs(2));
        assert_eq!(t.attempt_timeout, Duration::from_secs(5));
        assert!(t.retry_period + t.attempt_timeout < t.renew_deadline);
    }

    #[test]
    fn a_renewal_holds_until_the_renew_deadline_after_it_was_sent() {
        let sent = Instant::now();
        let t = LeaseTiming::of_seconds(15);
        let held = Holding::renewed(sent, &t);
        assert!(held.held_at(sent + Duration::from_millis(9_999)));
        assert!(!held.held_at(sent + Duration::from_secs(10)));
        assert!(!Holding::Not.held_at(sent));
        assert!(Holding::Alone.held_at(sent + Duration::from_secs(3600)));
    }

    #[test]
    fn another_holder_is_waited_for_a_full_duration_from_when_its_record_was_seen() {
        let t0 = Instant::now();
        let seen = observe(None, held_by("b", "r1"), t0);
        assert_eq!(
            next_step(&seen, "a", t0 + Duration::from_secs(14)),
            Step::Wait
        );
        // The same record read again does not restart the count.
        let again = observe(Some(seen), held_by("b", "r1"), t0 + Duration::from_secs(10));
        assert_eq!(again.at, t0);
        assert_eq!(
            next_step(&again, "a", t0 + Duration::from_secs(15)),
            Step::Acquire
        );
        // A renewal restarts it.
        let renewed = observe(
            Some(again),
            held_by("b", "r2"),
            t0 + Duration::from_secs(12),
        );
        assert_eq!(
            next_step(&renewed, "a", t0 + Duration::from_secs(20)),
            Step::Wait
        );
    }

    #[test]
    fn ours_is_renewed_and_a_free_one_taken() {
        let t0 = Instant::now();
        assert_eq!(
            next_step(&observe(None, held_by("a", "r"), t0), "a", t0),
            Step::Renew
        );
        assert_eq!(
            next_step(&observe(None, Record::default(), t0), "a", t0),
            Step::Acquire
        );
    }
}
