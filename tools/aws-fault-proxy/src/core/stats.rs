//! Request accounting for benchmarks: counts per operation, concurrency, and
//! the number of sequential round trips a client needed.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{json, Value};

/// One finished request. Times are wall-clock so that they can be lined up
/// with logs of the client under test.
#[derive(Clone, Debug, Serialize)]
pub struct RequestRecord {
    pub seq: u64,
    pub op: String,
    pub mutating: bool,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    /// HTTP status sent to the client; 499 if the client went away before the answer (the
    /// request was still carried out to moto's answer).
    pub status: u16,
    /// Which injected fault answered instead of moto, if any.
    pub fault: Option<&'static str>,
}

/// What the kill hook did, reported in the stats.
#[derive(Clone, Debug, Default, Serialize)]
pub struct KillReport {
    pub killed: bool,
    pub pid: Option<i32>,
    pub signal: Option<i32>,
    /// Sequence number of the mutating request after whose answer it fired.
    pub after_seq: Option<u64>,
    /// Operation of that request. Reported here because the request's own record is only
    /// written once the handler ends, which, for a client that was just killed, is whenever
    /// the server notices the connection is gone: a reader cannot count on seeing it yet.
    pub op: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Default)]
pub struct Stats {
    next_seq: u64,
    in_flight: u64,
    max_in_flight: u64,
    records: Vec<RequestRecord>,
    /// Mutating requests answered by moto since the kill hook was armed.
    pub mutating_answers: u64,
    pub kill: KillReport,
}

pub fn now_unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Stats {
    /// Registers a request as in flight and returns its sequence number.
    pub fn begin(&mut self) -> u64 {
        self.next_seq += 1;
        self.in_flight += 1;
        self.max_in_flight = self.max_in_flight.max(self.in_flight);
        self.next_seq
    }

    pub fn end(&mut self, record: RequestRecord) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.records.push(record);
    }

    /// Forgets counts and records. Requests still in flight keep counting
    /// toward `in_flight` so the gauge does not go wrong after a reset.
    pub fn reset(&mut self) {
        self.records.clear();
        self.max_in_flight = self.in_flight;
        self.mutating_answers = 0;
        self.kill = KillReport::default();
    }

    pub fn to_json(&self) -> Value {
        let mut by_operation: BTreeMap<&str, u64> = BTreeMap::new();
        for r in &self.records {
            *by_operation.entry(r.op.as_str()).or_default() += 1;
        }
        let mut requests = self.records.clone();
        requests.sort_by_key(|r| r.seq);
        json!({
            "total": self.records.len(),
            "mutating": self.records.iter().filter(|r| r.mutating).count(),
            "by_operation": by_operation,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "round_trips": round_trips(&self.records),
            "killed": self.kill.killed,
            "kill": self.kill,
            "requests": requests,
        })
    }
}

/// Number of sequential "waves" of requests.
///
/// Definition: the smallest number of instants such that every request was
/// in flight (start <= t <= end) at one of them. For intervals this equals
/// the largest number of requests that ran strictly one after another
/// (pairwise non-overlapping), so with an injected latency L a client needs
/// at least `round_trips * L` of wall time: it is the length of the critical
/// chain of dependent calls, independent of how many calls ran in parallel.
///
/// Greedy and exact: sort by end time, put an instant at the end of the first
/// request not yet covered, skip every request that started by then.
pub fn round_trips(records: &[RequestRecord]) -> u64 {
    let mut spans: Vec<(u64, u64)> = records
        .iter()
        .map(|r| (r.start_unix_nanos, r.end_unix_nanos.max(r.start_unix_nanos)))
        .collect();
    spans.sort_by_key(|&(_, end)| end);
    let mut waves = 0;
    let mut last_point: Option<u64> = None;
    for (start, end) in spans {
        let covered = matches!(last_point, Some(p) if start <= p);
        if !covered {
            waves += 1;
            last_point = Some(end);
        }
    }
    waves
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(start: u64, end: u64) -> RequestRecord {
        RequestRecord {
            seq: 0,
            op: "X".into(),
            mutating: false,
            start_unix_nanos: start,
            end_unix_nanos: end,
            status: 200,
            fault: None,
        }
    }

    #[test]
    fn sequential_requests_are_separate_waves() {
        let r = [rec(0, 10), rec(11, 20), rec(21, 30)];
        assert_eq!(round_trips(&r), 3);
    }

    #[test]
    fn parallel_requests_are_one_wave() {
        let r = [rec(0, 10), rec(1, 12), rec(2, 9), rec(20, 30)];
        assert_eq!(round_trips(&r), 2);
    }

    #[test]
    fn staggered_chain_is_not_merged_transitively() {
        // a overlaps b, b overlaps c, but a and c are sequential: a client
        // that pipelines like this still waited two latencies.
        let r = [rec(0, 10), rec(8, 18), rec(15, 25)];
        assert_eq!(round_trips(&r), 2);
        assert_eq!(round_trips(&[]), 0);
    }

    #[test]
    fn json_counts() {
        let mut s = Stats::default();
        let a = s.begin();
        let b = s.begin();
        let mut r = rec(0, 5);
        r.seq = b;
        r.op = "CreateVpc".into();
        r.mutating = true;
        s.end(r);
        let mut r = rec(1, 6);
        r.seq = a;
        r.op = "DescribeVpcs".into();
        s.end(r);
        let j = s.to_json();
        assert_eq!(j["total"], 2);
        assert_eq!(j["mutating"], 1);
        assert_eq!(j["max_in_flight"], 2);
        assert_eq!(j["by_operation"]["CreateVpc"], 1);
        assert_eq!(j["requests"][0]["seq"], 1);
        assert_eq!(j["round_trips"], 1);
    }
}
