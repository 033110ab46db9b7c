//! Retry and poll schedules: one `Backoff` value describes when attempts happen and when to
//! give up, and `run` drives an attempt closure on that schedule.
//!
//! Everything runs on `tokio::time` (never `std::time::Instant`), so every schedule can be
//! tested to the millisecond on tokio's paused clock. The schedules the engine uses are the
//! named constructors below, kept together so that their tests sit next to them; what each
//! loop retries, reports and returns stays in the loop.

use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// When a pause starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// At the moment the attempt was sent: a slow answer (latency, the SDK's own retries) does
    /// not stretch the period, so how late a wait notices a change depends on the pause alone.
    /// An attempt slower than the pause is followed at once (never two at a time).
    Sent,
    /// When the attempt's answer came back: a retry after a refusal leaves AWS the whole pause.
    Answered,
}

/// When the schedule gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Another attempt is made while less than this has passed since `run` started, measured
    /// when an attempt's answer is in.
    Deadline(Duration),
    /// At most this many attempts in all (at least one is always made).
    Attempts(u32),
}

/// A retry schedule: the pause before attempt `n + 1` is `first * factor^(n-1)`, at most `cap`
/// (the first pause is `first` as given, even above `cap`, as the loops have always done),
/// plus jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub factor: u32,
    pub cap: Duration,
    /// `Some(n)`: a random extra pause of 0 to `pause / n` (whole milliseconds, both ends
    /// included) is added to each pause, so that many clients refused together do not come
    /// back together. The growth is computed on the pause without it.
    pub jitter: Option<u32>,
    pub limit: Limit,
    pub anchor: Anchor,
    /// With a `Deadline`: the last pause ends at the deadline instead of past it, so that a
    /// wait looks one last time when its time is up rather than giving up on an older answer.
    pub clamp_to_deadline: bool,
}

impl Backoff {
    /// A wait polling until AWS reports a final state: first poll at once, then 250 ms
    /// (at most `poll_cap`), doubling up to `poll_cap`, anchored to send time, one last poll
    /// at `timeout`.
    pub fn wait(poll_cap: Duration, timeout: Duration) -> Backoff {
        Backoff {
            first: Duration::from_millis(250).min(poll_cap),
            factor: 2,
            cap: poll_cap,
            jitter: None,
            limit: Limit::Deadline(timeout),
            anchor: Anchor::Sent,
            clamp_to_deadline: true,
        }
    }

    /// A subnet deletion refused with `DependencyViolation`: ENIs the VPC CNI leaves behind
    /// take minutes to go. 500 ms after each refusal, doubling up to `poll_cap`, until `timeout`.
    pub fn dependency_violation(poll_cap: Duration, timeout: Duration) -> Backoff {
        Backoff {
            first: Duration::from_millis(500),
            factor: 2,
            cap: poll_cap,
            jitter: None,
            limit: Limit::Deadline(timeout),
            anchor: Anchor::Answered,
            clamp_to_deadline: false,
        }
    }

    /// A create EKS refuses while a new IAM role has not propagated: 500 ms after each refusal,
    /// doubling up to 10 s, plus up to a quarter of the pause at random (a cluster and its
    /// nodegroups wait on the same role), within `window`.
    pub fn iam_propagation(window: Duration) -> Backoff {
        Backoff {
            first: Duration::from_millis(500),
            factor: 2,
            cap: Duration::from_secs(10),
            jitter: Some(4),
            limit: Limit::Deadline(window),
            anchor: Anchor::Answered,
            clamp_to_deadline: false,
        }
    }

    /// Looking again for resources a crashed run started creating: attempt 1 is the refresh
    /// already made, then 4 more looks after 500, 1000, 2000 and 4000 ms (7.5 s in all, longer
    /// than AWS's read-after-write delays usually last).
    pub fn recheck() -> Backoff {
        Backoff {
            first: Duration::from_millis(500),
            factor: 2,
            cap: Duration::from_secs(4),
            jitter: None,
            limit: Limit::Attempts(5),
            anchor: Anchor::Answered,
            clamp_to_deadline: false,
        }
    }
}

/// What one attempt says.
#[derive(Debug)]
pub enum Step<T, S, E> {
    /// Finished, with this value.
    Done(T),
    /// Not yet, or refused in a way that may pass: try again if the schedule allows; `S` says
    /// why (a status, the refusal) and is what is returned when the schedule runs out.
    Retry(S),
    /// Stop now with this error, whatever the schedule.
    Fail(E),
}

/// Passed to the report hook after each `Step::Retry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Number of the attempt that said retry, from 1.
    pub attempt: u32,
    /// Time since `run` started, when that attempt's answer came in.
    pub elapsed: Duration,
    /// Whether another attempt follows; false when the schedule has run out.
    pub retrying: bool,
}

/// Why `run` stopped without `Step::Done`.
#[derive(Debug)]
pub enum Stop<S, E> {
    /// An attempt said `Step::Fail`.
    Failed(E),
    /// The schedule ran out; `last` is what the last attempt said.
    Exhausted {
        last: S,
        attempts: u32,
        /// Time since `run` started, when the last answer came in.
        elapsed: Duration,
        /// When `run` started, for a caller that measures again after more work.
        started: Instant,
    },
}

/// Runs `attempt` (given its number, from 1; the first at once) until it says `Done` or `Fail`
/// or the schedule runs out. `report` is called after each `Retry`, before the pause or the
/// give-up, with the retry's status.
pub async fn run<T, S, E, F, Fut, R>(
    backoff: &Backoff,
    mut attempt: F,
    mut report: R,
) -> Result<T, Stop<S, E>>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Step<T, S, E>>,
    R: FnMut(&S, Progress),
{
    let started = Instant::now();
    let mut pause = backoff.first;
    let mut n: u32 = 1;
    loop {
        let sent = Instant::now();
        let status = match attempt(n).await {
            Step::Done(value) => return Ok(value),
            Step::Fail(err) => return Err(Stop::Failed(err)),
            Step::Retry(status) => status,
        };
        let elapsed = started.elapsed();
        let retrying = match backoff.limit {
            Limit::Deadline(deadline) => elapsed < deadline,
            Limit::Attempts(max) => n < max,
        };
        report(
            &status,
            Progress {
                attempt: n,
                elapsed,
                retrying,
            },
        );
        if !retrying {
            return Err(Stop::Exhausted {
                last: status,
                attempts: n,
                elapsed,
                started,
            });
        }
        let mut this_pause = pause + jitter(pause, backoff.jitter);
        if let (Limit::Deadline(deadline), true) = (backoff.limit, backoff.clamp_to_deadline) {
            this_pause = this_pause.min(deadline.saturating_sub(elapsed));
        }
        match backoff.anchor {
            // Only waiting: a walk's slot is free for other resources meanwhile.
            Anchor::Sent => {
                crate::base::walker::idle(tokio::time::sleep_until(sent + this_pause)).await
            }
            Anchor::Answered => crate::base::walker::idle(tokio::time::sleep(this_pause)).await,
        }
        pause = pause.saturating_mul(backoff.factor).min(backoff.cap);
        n = n.saturating_add(1);
    }
}

/// The random extra pause: 0 to `pause / divisor`, in whole milliseconds.
fn jitter(pause: Duration, divisor: Option<u32>) -> Duration {
    match divisor {
        Some(d) if d > 0 => {
            Duration::from_millis(fastrand::u64(0..=pause.as_millis() as u64 / u64::from(d)))
        }
        _ => Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Runs `backoff` with attempts that each take `took` ms and say what `say` says for
    /// their number; returns the result, the attempt send times in ms since the start, and
    /// the reports.
    async fn drive(
        backoff: Backoff,
        took: u64,
        say: impl Fn(u32) -> Step<u32, String, String>,
    ) -> (
        Result<u32, Stop<String, String>>,
        Vec<u128>,
        Vec<(String, Progress)>,
    ) {
        let t0 = Instant::now();
        let sent = Mutex::new(Vec::new());
        let reports = Mutex::new(Vec::new());
        let result = run(
            &backoff,
            |n| {
                sent.lock().unwrap().push(t0.elapsed().as_millis());
                let step = say(n);
                async move {
                    tokio::time::sleep(Duration::from_millis(took)).await;
                    step
                }
            },
            |s: &String, p| reports.lock().unwrap().push((s.clone(), p)),
        )
        .await;
        (
            result,
            sent.into_inner().unwrap(),
            reports.into_inner().unwrap(),
        )
    }

    fn pending(n: u32) -> Step<u32, String, String> {
        Step::Retry(format!("status {n}"))
    }

    const S: Duration = Duration::from_secs(1);

    // ---- wait_until ----

    #[tokio::test(start_paused = true)]
    async fn wait_polls_at_once_then_doubles_from_250_ms_to_the_cap() {
        let b = Backoff::wait(2 * S, 60 * S);
        let (r, sent, _) = drive(b, 0, |n| if n < 7 { pending(n) } else { Step::Done(n) }).await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(sent, vec![0, 250, 750, 1750, 3750, 5750, 7750]);
    }

    #[tokio::test(start_paused = true)]
    async fn wait_is_anchored_to_send_time_and_a_slow_poll_is_followed_at_once() {
        // Polls of 80 ms keep the grid; a poll of 600 ms (longer than the 500 ms pause after
        // it) is followed as soon as it answers, and the grid goes on from there.
        let b = Backoff::wait(S, 60 * S);
        let took = [80u64, 600, 80, 80, 80];
        let t0 = Instant::now();
        let sent = Mutex::new(Vec::new());
        run(
            &b,
            |n| {
                sent.lock().unwrap().push(t0.elapsed().as_millis());
                async move {
                    tokio::time::sleep(Duration::from_millis(took[n as usize - 1])).await;
                    if n < 5 {
                        Step::<(), String, String>::Retry("CREATING".into())
                    } else {
                        Step::Done(())
                    }
                }
            },
            |_, _| {},
        )
        .await
        .unwrap();
        // 0 (+250) 250 took 600 → 850 at once; then +1000 (cap) → 1850, 2850.
        assert_eq!(sent.into_inner().unwrap(), vec![0, 250, 850, 1850, 2850]);
    }

    #[tokio::test(start_paused = true)]
    async fn wait_below_250_ms_cap_polls_every_cap() {
        let b = Backoff::wait(Duration::from_millis(100), 60 * S);
        let (_, sent, _) = drive(b, 0, |n| if n < 4 { pending(n) } else { Step::Done(n) }).await;
        assert_eq!(sent, vec![0, 100, 200, 300]);
    }

    #[tokio::test(start_paused = true)]
    async fn wait_polls_a_last_time_at_the_deadline_and_returns_the_last_status() {
        let b = Backoff::wait(15 * S, 30 * S);
        let (r, sent, reports) = drive(b, 0, pending).await;
        // 15.75 s + 15 s would pass the deadline: the last pause ends at 30 s.
        assert_eq!(sent, vec![0, 250, 750, 1750, 3750, 7750, 15750, 30000]);
        match r {
            Err(Stop::Exhausted {
                last,
                attempts,
                elapsed,
                ..
            }) => {
                assert_eq!(last, "status 8");
                assert_eq!(attempts, 8);
                assert_eq!(elapsed, 30 * S);
            }
            other => panic!("{other:?}"),
        }
        // Every status is reported, the last one too, said to be the last.
        assert_eq!(reports.len(), 8);
        assert!(reports[..7].iter().all(|(_, p)| p.retrying));
        let (status, last) = &reports[7];
        assert_eq!(status, "status 8");
        assert_eq!(
            *last,
            Progress {
                attempt: 8,
                elapsed: 30 * S,
                retrying: false
            }
        );
    }

    // ---- subnet delete (DependencyViolation) ----

    #[tokio::test(start_paused = true)]
    async fn dependency_violation_pauses_after_each_answer_doubling_to_the_cap() {
        // Each DeleteSubnet takes 100 ms; the pause starts when it answers.
        let b = Backoff::dependency_violation(3 * S, 300 * S);
        let (r, sent, _) = drive(b, 100, |n| if n < 6 { pending(n) } else { Step::Done(n) }).await;
        assert_eq!(r.unwrap(), 6);
        // +100+500, +100+1000, +100+2000, +100+3000 (cap), +100+3000.
        assert_eq!(sent, vec![0, 600, 1700, 3800, 6900, 10000]);
    }

    #[tokio::test(start_paused = true)]
    async fn dependency_violation_first_pause_is_500_ms_even_below_the_cap() {
        let b = Backoff::dependency_violation(Duration::from_millis(100), 300 * S);
        let (_, sent, _) = drive(b, 0, |n| if n < 4 { pending(n) } else { Step::Done(n) }).await;
        assert_eq!(sent, vec![0, 500, 600, 700]);
    }

    #[tokio::test(start_paused = true)]
    async fn dependency_violation_gives_up_on_the_first_refusal_past_the_timeout() {
        // No clamp: the pause after 3.5 s runs its full 4 s, and the refusal at 7.5 s ends it.
        let b = Backoff::dependency_violation(15 * S, 5 * S);
        let (r, sent, reports) = drive(b, 0, pending).await;
        assert_eq!(sent, vec![0, 500, 1500, 3500, 7500]);
        match r {
            Err(Stop::Exhausted {
                last,
                attempts,
                elapsed,
                started,
            }) => {
                assert_eq!(last, "status 5");
                assert_eq!(attempts, 5);
                assert_eq!(elapsed, Duration::from_millis(7500));
                assert_eq!(started.elapsed(), Duration::from_millis(7500));
            }
            other => panic!("{other:?}"),
        }
        let retried: Vec<u32> = reports
            .iter()
            .filter(|(_, p)| p.retrying)
            .map(|(_, p)| p.attempt)
            .collect();
        assert_eq!(retried, vec![1, 2, 3, 4]);
    }

    // ---- retry_iam_propagation ----

    #[tokio::test(start_paused = true)]
    async fn iam_propagation_times_are_the_base_schedule_plus_the_drawn_jitter() {
        // Same seed as the thread's generator (a current-thread test runtime): the expected
        // jitter is drawn again from a copy.
        fastrand::seed(7);
        let mut copy = fastrand::Rng::with_seed(7);
        let b = Backoff::iam_propagation(120 * S);
        let (r, sent, _) = drive(b, 0, |n| if n < 8 { pending(n) } else { Step::Done(n) }).await;
        assert_eq!(r.unwrap(), 8);
        let mut expected = vec![0u128];
        let mut at = 0u64;
        for base in [500u64, 1000, 2000, 4000, 8000, 10000, 10000] {
            at += base + copy.u64(0..=base / 4);
            expected.push(u128::from(at));
        }
        assert_eq!(sent, expected);
    }

    #[tokio::test(start_paused = true)]
    async fn iam_propagation_jitter_stays_within_a_quarter_of_the_pause() {
        let b = Backoff::iam_propagation(3600 * S);
        let (_, sent, _) = drive(b, 0, |n| if n < 200 { pending(n) } else { Step::Done(n) }).await;
        let mut base = 500u128;
        let mut above_base = false;
        for gap in sent.windows(2).map(|w| w[1] - w[0]) {
            assert!((base..=base + base / 4).contains(&gap), "{gap} for {base}");
            above_base |= gap > base;
            base = (base * 2).min(10_000);
        }
        // Jitter is there at all.
        assert!(above_base);
    }

    #[tokio::test(start_paused = true)]
    async fn iam_propagation_gives_up_after_its_window_with_the_last_error() {
        let b = Backoff {
            jitter: None,
            ..Backoff::iam_propagation(120 * S)
        };
        let (r, sent, _) = drive(b, 0, pending).await;
        // 500 ms doubling to 10 s: ... 15.5 s, then every 10 s: 115.5 s is inside the
        // window, 125.5 s is past it.
        assert_eq!(sent[..6], [0, 500, 1500, 3500, 7500, 15500]);
        assert_eq!(sent[sent.len() - 2..], [115_500, 125_500]);
        match r {
            Err(Stop::Exhausted { last, attempts, .. }) => {
                assert_eq!(attempts as usize, sent.len());
                assert_eq!(last, format!("status {attempts}"));
            }
            other => panic!("{other:?}"),
        }
    }

    // ---- recheck_intents ----

    #[tokio::test(start_paused = true)]
    async fn recheck_looks_four_more_times_then_gives_up() {
        let (r, sent, _) = drive(Backoff::recheck(), 0, pending).await;
        assert_eq!(sent, vec![0, 500, 1500, 3500, 7500]);
        match r {
            Err(Stop::Exhausted { last, attempts, .. }) => {
                assert_eq!(last, "status 5");
                assert_eq!(attempts, 5);
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn recheck_stops_when_everything_is_found() {
        let (r, sent, _) = drive(Backoff::recheck(), 0, |n| {
            if n < 3 {
                pending(n)
            } else {
                Step::Done(n)
            }
        })
        .await;
        assert_eq!(r.unwrap(), 3);
        assert_eq!(sent, vec![0, 500, 1500]);
    }

    // ---- common ----

    #[tokio::test(start_paused = true)]
    async fn a_failure_stops_at_once_without_a_pause_or_a_report() {
        let t0 = Instant::now();
        let (r, sent, reports) = drive(Backoff::dependency_violation(S, 300 * S), 0, |n| {
            if n < 3 {
                pending(n)
            } else {
                Step::Fail(format!("AccessDenied on attempt {n}"))
            }
        })
        .await;
        assert_eq!(sent, vec![0, 500, 1500]);
        assert_eq!(t0.elapsed(), Duration::from_millis(1500));
        assert_eq!(reports.len(), 2);
        match r {
            Err(Stop::Failed(e)) => assert_eq!(e, "AccessDenied on attempt 3"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn at_least_one_attempt_is_made() {
        let b = Backoff {
            limit: Limit::Attempts(0),
            ..Backoff::recheck()
        };
        let (r, sent, _) = drive(b, 0, pending).await;
        assert_eq!(sent, vec![0]);
        assert!(matches!(r, Err(Stop::Exhausted { attempts: 1, .. })));
    }
}
