//! Tests of routing: rule order and `fits`, the bound of bounded loads, stickiness when
//! endpoints come and go, the balance of the power of two choices, and the checks of rules.

use std::collections::{BTreeMap, HashMap};

use super::*;

fn rules(yaml: &str) -> Vec<RouteRule> {
    serde_saphyr::from_str(yaml).expect("rules")
}

fn endpoints(prefix: &str, n: usize) -> Vec<Endpoint> {
    (0..n)
        .map(|i| Endpoint::new(format!("{prefix}-{i}"), "web", "sim"))
        .collect()
}

fn request(kind: &str) -> RouteRequest {
    RouteRequest::of_kind(kind)
}

/// Where each of `sessions` sessions goes, each released at once (no load).
fn placement(router: &Router, sessions: usize) -> Vec<String> {
    (0..sessions)
        .map(|s| {
            let routed = router
                .route(&RouteRequest::default().in_session(format!("session-{s}")))
                .unwrap();
            router.done(&routed).unwrap();
            assert!(routed.sticky, "an idle pool always has room at the owner");
            routed.endpoint.id
        })
        .collect()
}

#[test]
fn rules_are_tried_in_order_and_the_first_match_wins() {
    let router = Router::new(rules(
        "- { name: gold-queries, match: { kind: query, labels: { tier: gold } }, pool: fast }\n- { match: { kind: query }, pool: web }\n- { match: { kind: task }, pool: batch }\n- { match: { labels: { tier: gold } }, pool: fast }\n",
    ));
    for pool in ["fast", "web", "batch"] {
        router.set_endpoints(pool, endpoints(pool, 2)).unwrap();
    }
    let mut gold = request("query");
    gold.labels.insert("tier".into(), "gold".into());
    gold.labels.insert("region".into(), "eu".into());
    let routed = router.route(&gold).unwrap();
    assert_eq!(
        (
            routed.pool.as_str(),
            routed.rule.as_str(),
            routed.rule_index
        ),
        ("fast", "gold-queries", 0)
    );
    let routed = router.route(&request("query")).unwrap();
    assert_eq!(
        (routed.pool.as_str(), routed.rule.as_str()),
        ("web", "routes[1]")
    );
    let routed = router.route(&request("task")).unwrap();
    assert_eq!(routed.pool, "batch");
    // A label alone matches the last rule; a different value matches none.
    let mut feature = request("feature");
    feature.labels.insert("tier".into(), "gold".into());
    assert_eq!(router.route(&feature).unwrap().rule_index, 3);
    feature.labels.insert("tier".into(), "silver".into());
    assert!(matches!(
        router.route(&feature),
        Err(RouteError::NoMatch { tried: 4, .. })
    ));
}

#[test]
fn fits_takes_only_requests_whose_declared_needs_are_within_it() {
    let router = Router::new(rules(
        "- { name: small, match: { fits: { cpu: 2, memory_gib: 4, io: medium } }, pool: small }\n- { name: rest, pool: large }\n",
    ));
    router.set_endpoints("small", endpoints("s", 1)).unwrap();
    router.set_endpoints("large", endpoints("l", 1)).unwrap();
    let pool_for = |cpu: Option<f64>, memory: Option<f64>, io: Option<NeedLevel>| {
        let mut request = request("task");
        request.needs = Needs {
            cpu,
            memory_gib: memory,
            io,
            network: Some(NeedLevel::High), // not limited by `fits`
        };
        router.route(&request).unwrap().pool
    };
    assert_eq!(
        pool_for(Some(2.0), Some(4.0), Some(NeedLevel::Medium)),
        "small"
    );
    assert_eq!(pool_for(Some(0.5), None, Some(NeedLevel::Low)), "small");
    assert_eq!(pool_for(None, None, None), "small", "nothing declared fits");
    assert_eq!(pool_for(Some(2.5), None, None), "large");
    assert_eq!(pool_for(Some(1.0), Some(4.5), None), "large");
    assert_eq!(pool_for(Some(1.0), None, Some(NeedLevel::High)), "large");
}

#[test]
fn a_request_no_rule_matches_is_refused_saying_what_it_was() {
    let router = Router::new(rules(
        "- { match: { kind: query }, pool: web }\n- { match: { kind: task }, pool: web }\n",
    ));
    let mut request = request("protocol");
    request.labels.insert("tenant".into(), "acme".into());
    request.needs.cpu = Some(4.0);
    request.needs.io = Some(NeedLevel::High);
    let error = router.route(&request).unwrap_err();
    assert_eq!(
        error.to_string(),
        "no routing rule matches a request of kind `protocol`, labels {tenant=acme}, needs: cpu 4, io high (2 rules tried, in order; add a rule for it, or a last rule without `match` to catch everything)"
    );
}

#[test]
fn a_pool_without_endpoints_and_hostile_needs_are_clear_errors() {
    let router = Router::new(vec![RouteRule::to_pool("web")]);
    let error = router.route(&request("query")).unwrap_err();
    assert!(matches!(error, RouteError::NoEndpoints { .. }));
    assert!(
        error
            .to_string()
            .contains("pool `web` (chosen by rule `routes[0]`) has no endpoints")
    );
    router.set_endpoints("web", endpoints("w", 2)).unwrap();
    for bad in [f64::NAN, -1.0, f64::INFINITY] {
        let mut request = request("query");
        request.needs.memory_gib = Some(bad);
        let error = router.route(&request).unwrap_err();
        assert!(matches!(error, RouteError::InvalidRequest(_)), "{error}");
        assert!(error.to_string().contains("needs.memory_gib"), "{error}");
    }
    assert_eq!(router.pool_load("web").unwrap().in_flight, 0);
    // Setting endpoints of a pool no rule names.
    let error = router.set_endpoints("batch", vec![]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "no routing rule names pool `batch`; the router's pools are `web`"
    );
}

/// Sessions, none ever finished: after every placement no endpoint holds more than the bound
/// it was placed under, `ceil(c × (m + 1) × share)`, so at the end none holds more than
/// `ceil(c × m × share)` of the `m` in flight.
#[test]
fn no_endpoint_exceeds_the_bounded_load() {
    for (c, weights) in [
        (1.25, vec![1.0; 8]),
        (1.0, vec![1.0; 5]),
        (1.5, vec![1.0, 2.0, 4.0, 1.0]),
    ] {
        let mut rule = RouteRule::to_pool("web");
        rule.load_bound = c;
        // The paper's bound alone: no floor.
        rule.min_bound = 1;
        let router = Router::new(vec![rule]);
        let total_weight: f64 = weights.iter().sum();
        router
            .set_endpoints(
                "web",
                weights
                    .iter()
                    .enumerate()
                    .map(|(i, &w)| Endpoint::new(format!("i-{i}"), "web", "sim").with_weight(w))
                    .collect(),
            )
            .unwrap();
        // 20 sessions carry all the work: hot sessions, whose owners fill up first.
        let mut moves = 0;
        for k in 0..2_000u64 {
            let session = format!("hot-{}", k % 20);
            let routed = router
                .route(&RouteRequest::default().in_session(session))
                .unwrap();
            moves += u32::from(!routed.sticky);
            let load = router.pool_load("web").unwrap();
            for endpoint in &load.endpoints {
                let bound =
                    (c * load.in_flight as f64 * endpoint.endpoint.weight / total_weight).ceil();
                assert!(
                    endpoint.in_flight as f64 <= bound,
                    "c {c}: {} holds {} of {} in flight, bound {bound}",
                    endpoint.endpoint.id,
                    endpoint.in_flight,
                    load.in_flight
                );
            }
        }
        assert!(moves > 0, "the hot sessions should overflow their owners");
        assert_eq!(
            router.pool_load("web").unwrap().sticky_moves,
            u64::from(moves)
        );
    }
}

#[test]
fn a_session_stays_on_its_endpoint_while_it_has_room() {
    let router = Router::new(vec![RouteRule::to_pool("web")]);
    router.set_endpoints("web", endpoints("i", 10)).unwrap();
    let first = router
        .route(&RouteRequest::default().in_session("user-42"))
        .unwrap();
    assert!(first.sticky);
    assert!(
        first.reason.contains("owner on the ring"),
        "{}",
        first.reason
    );
    // Moderate load elsewhere does not move it.
    for s in 0..30 {
        router
            .route(&RouteRequest::default().in_session(format!("other-{s}")))
            .unwrap();
    }
    for _ in 0..3 {
        let again = router
            .route(&RouteRequest::default().in_session("user-42"))
            .unwrap();
        assert_eq!(again.endpoint.id, first.endpoint.id);
        router.done(&again).unwrap();
    }
    // A non-sticky rule ignores the session.
    let mut rule = RouteRule::to_pool("web");
    rule.sticky = false;
    let router = Router::new(vec![rule]);
    router.set_endpoints("web", endpoints("i", 10)).unwrap();
    let routed = router
        .route(&RouteRequest::default().in_session("user-42"))
        .unwrap();
    assert!(!routed.sticky);
    assert!(
        routed.reason.starts_with("power of two choices"),
        "{}",
        routed.reason
    );
}

/// Adding one endpoint to `n` moves about `1 / (n + 1)` of the sessions, all of them to the
/// new endpoint; removing one moves exactly the sessions it had.
#[test]
fn scale_out_moves_about_one_in_n_plus_one_sessions_and_scale_in_only_the_removed_ones() {
    const SESSIONS: usize = 10_000;
    for n in [10, 50] {
        let router = Router::new(vec![RouteRule::to_pool("web")]);
        router.set_endpoints("web", endpoints("i", n)).unwrap();
        let before = placement(&router, SESSIONS);

        router.set_endpoints("web", endpoints("i", n + 1)).unwrap();
        let after = placement(&router, SESSIONS);
        let newcomer = format!("i-{n}");
        let moved: Vec<usize> = (0..SESSIONS).filter(|&s| before[s] != after[s]).collect();
        assert!(
            moved.iter().all(|&s| after[s] == newcomer),
            "a session moved between two old endpoints"
        );
        let share = moved.len() as f64 / SESSIONS as f64;
        let due = 1.0 / (n + 1) as f64;
        assert!(
            (0.6 * due..1.4 * due).contains(&share),
            "n {n}: {share:.4} of sessions moved, due {due:.4}"
        );

        // Remove endpoint 3: only its sessions move, and none to the others' places.
        let mut fewer = endpoints("i", n + 1);
        fewer.remove(3);
        router.set_endpoints("web", fewer).unwrap();
        let last = placement(&router, SESSIONS);
        for s in 0..SESSIONS {
            if after[s] == "i-3" {
                assert_ne!(last[s], "i-3");
            } else {
                assert_eq!(
                    last[s], after[s],
                    "session {s} moved though its endpoint stayed"
                );
            }
        }
    }
}

#[test]
fn replacing_endpoints_keeps_the_counts_of_those_that_stay() {
    let router = Router::new(vec![RouteRule::to_pool("web")]);
    router.set_endpoints("web", endpoints("i", 4)).unwrap();
    let mut routed = Vec::new();
    for _ in 0..40 {
        routed.push(router.route(&request("query")).unwrap());
    }
    let load = router.pool_load("web").unwrap();
    let on = |id: &str| {
        load.endpoints
            .iter()
            .find(|e| e.endpoint.id == id)
            .map_or(0, |e| e.in_flight)
    };
    let (kept, gone) = (on("i-1"), on("i-3"));
    let mut next = endpoints("i", 3);
    next.push(Endpoint::new("i-9", "web", "sim"));
    next.push(Endpoint::new("i-9", "web", "sim"));
    let change = router.set_endpoints("web", next).unwrap();
    assert_eq!(
        change,
        EndpointsChange {
            added: 1,
            removed: 1,
            kept: 3,
            duplicates: 1
        }
    );
    let load = router.pool_load("web").unwrap();
    assert_eq!(load.in_flight, 40 - gone);
    assert_eq!(load.endpoints[1].in_flight, kept);
    assert_eq!(load.endpoints[3].in_flight, 0);
    // Work on the endpoint that left cannot be released; the rest can.
    for r in &routed {
        match router.done(r) {
            Ok(()) => assert_ne!(r.endpoint.id, "i-3"),
            Err(e) => assert!(matches!(e, RouteError::UnknownEndpoint { .. }), "{e}"),
        }
    }
    assert_eq!(router.pool_load("web").unwrap().in_flight, 0);
    let error = router.release("web", "i-0").unwrap_err();
    assert_eq!(
        error.to_string(),
        "endpoint `i-0` of pool `web` has no work in flight to release"
    );
}

/// A steady stream: 16 endpoints, about 160 requests in flight, a random one finishing for each
/// that arrives. The power of two choices keeps the busiest endpoint close to the mean.
#[test]
fn the_power_of_two_choices_keeps_endpoints_balanced_under_load() {
    for balance in [Balance::PowerOfTwo, Balance::LeastOutstanding] {
        let mut rule = RouteRule::to_pool("web");
        rule.balance = balance;
        let router = Router::with_seed(vec![rule], 11);
        router.set_endpoints("web", endpoints("i", 16)).unwrap();
        let mut in_flight: Vec<Routed> = Vec::new();
        let mut rng = 0x1234_5678_u64;
        let mut worst: f64 = 0.0;
        for step in 0..50_000 {
            in_flight.push(router.route(&request("query")).unwrap());
            if in_flight.len() > 160 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let done = in_flight.swap_remove((rng % in_flight.len() as u64) as usize);
                router.done(&done).unwrap();
            }
            if step > 1_000 && step % 100 == 0 {
                let load = router.pool_load("web").unwrap();
                let max = load.endpoints.iter().map(|e| e.in_flight).max().unwrap();
                let mean = load.in_flight as f64 / 16.0;
                worst = worst.max(max as f64 / mean);
            }
        }
        let limit = match balance {
            Balance::PowerOfTwo => 1.6,
            Balance::LeastOutstanding => 1.25,
        };
        assert!(worst <= limit, "{balance:?}: max/mean reached {worst:.2}");
    }
}

#[test]
fn weights_share_the_work() {
    for balance in [Balance::PowerOfTwo, Balance::LeastOutstanding] {
        let mut rule = RouteRule::to_pool("web");
        rule.balance = balance;
        let router = Router::new(vec![rule]);
        router
            .set_endpoints(
                "web",
                vec![
                    Endpoint::new("small", "web", "sim").with_weight(1.0),
                    Endpoint::new("big", "web", "sim").with_weight(3.0),
                    Endpoint::new("bad", "web", "sim").with_weight(f64::NAN),
                ],
            )
            .unwrap();
        for _ in 0..500 {
            router.route(&request("query")).unwrap();
        }
        let load = router.pool_load("web").unwrap();
        let by_id: HashMap<&str, u64> = load
            .endpoints
            .iter()
            .map(|e| (e.endpoint.id.as_str(), e.in_flight))
            .collect();
        assert_eq!(load.endpoints[2].endpoint.weight, 1.0, "NaN counts as 1");
        let big = by_id["big"] as f64 / 300.0;
        let small = by_id["small"] as f64 / 100.0;
        assert!(
            (0.9..1.1).contains(&(big / small)),
            "{balance:?}: {by_id:?}"
        );
    }
}

#[test]
fn the_router_is_shared_by_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<Router>();
    let router = std::sync::Arc::new(Router::new(vec![RouteRule::to_pool("web")]));
    router.set_endpoints("web", endpoints("i", 8)).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let router = std::sync::Arc::clone(&router);
            std::thread::spawn(move || {
                for k in 0..5_000 {
                    let mut request = RouteRequest::default();
                    if k % 2 == 0 {
                        request.session = Some(format!("s-{t}-{}", k % 50));
                    }
                    let routed = router.route(&request).unwrap();
                    router.done(&routed).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let load = router.pool_load("web").unwrap();
    assert_eq!((load.in_flight, load.routed_total), (0, 20_000));
    assert!(load.endpoints.iter().all(|e| e.in_flight == 0));
    assert_eq!(router.rule_loads()[0].routed_total, 20_000);
}

#[test]
fn rules_read_with_their_defaults_and_requests_refuse_unknown_fields() {
    let rule = &rules("- { match: { kind: query }, pool: web }\n")[0];
    assert!(rule.sticky);
    assert_eq!(rule.balance, Balance::PowerOfTwo);
    assert_eq!(rule.load_bound, 1.25);
    assert!(serde_saphyr::from_str::<Vec<RouteRule>>("- { pool: web, matches: {} }\n").is_err());
    let request: RouteRequest = serde_json::from_str(
        r#"{"kind":"query","labels":{"a":"b"},"needs":{"cpu":2,"io":"high"},"session":"s"}"#,
    )
    .unwrap();
    assert_eq!(request.needs.io, Some(NeedLevel::High));
    let error = serde_json::from_str::<RouteRequest>(r#"{"kind":"query","sesion":"s"}"#)
        .unwrap_err()
        .to_string();
    assert!(error.contains("unknown field `sesion`"), "{error}");
    assert!(NeedLevel::Low < NeedLevel::Medium && NeedLevel::Medium < NeedLevel::High);
    let schema = serde_json::to_value(schemars::schema_for!(RouteRule)).unwrap();
    assert!(schema["properties"]["match"].is_object(), "{schema}");
    assert!(schema["properties"]["load_bound"]["description"].is_string());
}

#[test]
fn validation_names_the_field_and_says_what_is_wrong() {
    let rules = rules(
        "- { name: a, pool: web, match: { kind: query, fits: { cpu: -1 } } }\n- { name: a, pool: nowhere, load_bound: 0.5, match: { kind: batch } }\n- { pool: web }\n- { pool: web, match: { kind: task } }\n",
    );
    let problems: BTreeMap<String, String> = validate_rules(&rules, &["web", "batch"])
        .into_iter()
        .collect();
    assert_eq!(
        problems["routes[1].pool"],
        "no pool named `nowhere`; the pools are `batch`, `web`"
    );
    assert!(
        problems["routes[1].load_bound"].contains("at least 1"),
        "{problems:?}"
    );
    assert!(problems["routes[1].name"].contains("also the name of routes[0]"));
    assert!(problems["routes[0].match.fits.cpu"].contains("got -1"));
    assert!(problems["routes[3].match"].contains("never used: routes[2]"));
    assert_eq!(problems.len(), 5, "{problems:?}");
    let none = validate_rules(&rules[..1], &[]);
    assert!(
        none.iter()
            .any(|(f, m)| f == "routes[0].pool" && m.contains("defines no pools"))
    );
    let mut nan = rules[2].clone();
    nan.load_bound = f64::NAN;
    assert_eq!(
        validate_rules(&[nan], &["web"])[0].0,
        "routes[0].load_bound"
    );
}

/// At low load the paper's bound is 1, so an endpoint holding one request would turn its own
/// sessions away; `min_bound` (default 2) keeps them home, and 1 restores the paper's rule.
#[test]
fn min_bound_keeps_sessions_home_at_low_load() {
    for (min_bound, stays) in [(2, true), (1, false)] {
        let mut rule = RouteRule::to_pool("web");
        rule.min_bound = min_bound;
        let router = Router::new(vec![rule]);
        router
            .set_endpoints(
                "web",
                (0..8)
                    .map(|i| Endpoint::new(format!("i-{i}"), "web", "sim"))
                    .collect(),
            )
            .unwrap();
        let first = router
            .route(&RouteRequest::default().in_session("user-7"))
            .unwrap();
        assert!(first.sticky);
        // The first request is still in flight: 1 of 1 on its endpoint.
        let second = router
            .route(&RouteRequest::default().in_session("user-7"))
            .unwrap();
        assert_eq!(
            second.endpoint.id == first.endpoint.id,
            stays,
            "min_bound {min_bound}: {second:?}"
        );
        assert_eq!(second.sticky, stays);
    }
}
