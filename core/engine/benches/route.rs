//! Routing decisions per second, in process: a request without a session (power of two choices)
//! and with one (consistent hashing with bounded loads), on pools of 16 and 256 endpoints, each
//! decision followed by its release so the pool's load stays steady (8 units in flight per
//! endpoint). Before the timings it prints the share of 10,000 sessions that move when one
//! endpoint is added to 10, 50 or 256 (consistent hashing's due is 1 / (n + 1)) and when one is
//! removed.
//!
//! `cargo bench -p hoist-engine --bench route` prints the time per decision; the target is over
//! a million decisions per second on one core (under 1 µs each).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hoist_engine::route::{Endpoint, RouteRequest, RouteRule, Router};

const SESSIONS: usize = 10_000;

fn endpoints(n: usize) -> Vec<Endpoint> {
    (0..n)
        .map(|i| Endpoint::new(format!("i-{i:08}"), "web", "sim"))
        .collect()
}

fn session_requests() -> Vec<RouteRequest> {
    (0..SESSIONS)
        .map(|s| RouteRequest::of_kind("query").in_session(format!("user-{s}")))
        .collect()
}

/// Where every session goes on an idle pool.
fn placement(router: &Router, requests: &[RouteRequest]) -> Vec<String> {
    requests
        .iter()
        .map(|request| {
            let routed = router.route(request).expect("routed");
            router.done(&routed).expect("released");
            routed.endpoint.id
        })
        .collect()
}

fn stickiness(_c: &mut Criterion) {
    let requests = session_requests();
    println!("stickiness: share of {SESSIONS} sessions that move");
    for n in [10, 50, 256] {
        let router = Router::new(vec![RouteRule::to_pool("web")]);
        router.set_endpoints("web", endpoints(n)).expect("pool");
        let before = placement(&router, &requests);
        router.set_endpoints("web", endpoints(n + 1)).expect("pool");
        let after = placement(&router, &requests);
        let added = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        let mut fewer = endpoints(n + 1);
        fewer.remove(0);
        router.set_endpoints("web", fewer).expect("pool");
        let last = placement(&router, &requests);
        let removed = after.iter().zip(&last).filter(|(a, b)| a != b).count();
        let had = after.iter().filter(|e| *e == "i-00000000").count();
        println!(
            "  n = {n:>3}: one endpoint added moves {:.2} % (1/(n+1) = {:.2} %); one removed moves {:.2} % (its own sessions: {:.2} %)",
            added as f64 * 100.0 / SESSIONS as f64,
            100.0 / (n + 1) as f64,
            removed as f64 * 100.0 / SESSIONS as f64,
            had as f64 * 100.0 / SESSIONS as f64,
        );
    }
}

fn bench_route(c: &mut Criterion) {
    let sessions = session_requests();
    let plain = RouteRequest::of_kind("query");
    let mut group = c.benchmark_group("route");
    group.throughput(Throughput::Elements(1));
    for n in [16, 256] {
        // Two rules, the second taking the work, as a file with a rule per kind would.
        let rules: Vec<RouteRule> = vec![
            RouteRule {
                match_: hoist_engine::route::RouteMatch {
                    kind: Some("task".into()),
                    ..Default::default()
                },
                ..RouteRule::to_pool("batch")
            },
            RouteRule::to_pool("web"),
        ];
        let router = Router::new(rules);
        router.set_endpoints("web", endpoints(n)).expect("pool");
        // A steady load: 8 in flight per endpoint, never released.
        for _ in 0..8 * n {
            router.route(&plain).expect("routed");
        }
        group.bench_function(format!("no session, {n} endpoints"), |b| {
            b.iter(|| {
                let routed = router.route(black_box(&plain)).expect("routed");
                router.done(&routed).expect("released");
                routed
            })
        });
        let mut next = 0;
        group.bench_function(format!("session, {n} endpoints"), |b| {
            b.iter(|| {
                next = (next + 1) % SESSIONS;
                let routed = router.route(black_box(&sessions[next])).expect("routed");
                router.done(&routed).expect("released");
                routed
            })
        });
    }
    group.finish();
}

criterion_group!(benches, stickiness, bench_route);
criterion_main!(benches);
