//! Sequences through the CLI and the gateway: each step's reply feeds the next, the
//! last reply reaches `reply`, and nothing is lost on the way.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paas_e2e::{event_server, http, write_manifest, Hop, Platform, ReceivedEvent, RuntimeKind};

/// A step that answers each event with the same event, its data (a JSON string)
/// extended by ` word`. With `flaky`, the first attempt at each event gets a 503: half
/// of all requests fail.
fn appender(word: &'static str, flaky: bool) -> u16 {
    let tried: Arc<Mutex<HashSet<String>>> = Arc::default();
    event_server(move |event| {
        if flaky
            && tried
                .lock()
                .unwrap()
                .insert(event.header("ce-id").to_owned())
        {
            return "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n".to_owned();
        }
        let data: String = serde_json::from_str(&event.body).unwrap();
        reply_with(
            &event,
            None,
            &serde_json::to_string(&format!("{data} {word}")).unwrap(),
        )
    })
}

/// A 200 carrying `event` back as a reply, with another id if given and `body` as
/// its JSON data.
fn reply_with(event: &ReceivedEvent, id: Option<&str>, body: &str) -> String {
    let mut resp = "HTTP/1.1 200 OK\r\n".to_owned();
    for (k, v) in &event.headers {
        let v = if k == "ce-id" { id.unwrap_or(v) } else { v };
        if k.starts_with("ce-") {
            resp.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    resp.push_str(&format!(
        "content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    ));
    resp
}

const ACCEPTED: &str = "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n";

/// A sink that keeps the ids (and data) of what it receives.
fn recorder() -> (u16, Received) {
    let received: Received = Arc::default();
    let r = received.clone();
    let port = event_server(move |event| {
        r.lock()
            .unwrap()
            .insert(event.header("ce-id").to_owned(), event);
        ACCEPTED.to_owned()
    });
    (port, received)
}

type Received = Arc<Mutex<HashMap<String, ReceivedEvent>>>;

fn wait_count<V>(what: &str, map: &Arc<Mutex<HashMap<String, V>>>, n: usize, p: &Platform) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while map.lock().unwrap().len() < n {
        assert!(
            Instant::now() < deadline,
            "{what}: {} of {n}\n{}",
            map.lock().unwrap().len(),
            p.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// POST events `{prefix}-0`.. with data `"0"`..; with `keys` above 0, event i gets the
/// partition key `k{i % keys}`.
fn post_events(p: &Platform, path: &str, prefix: &str, n: usize, keys: usize) {
    let host = format!("channel-ingress.localhost:{}", p.http_port);
    for i in 0..n {
        let id = format!("{prefix}-{i}");
        let key = format!("k{}", i % keys.max(1));
        let mut headers = vec![
            ("ce-specversion", "1.0"),
            ("ce-id", id.as_str()),
            ("ce-source", "/e2e"),
            ("ce-type", "dev.paas.flows"),
            ("content-type", "application/json"),
        ];
        if keys > 0 {
            headers.push(("ce-partitionkey", key.as_str()));
        }
        let r = http(
            p.http_port,
            &host,
            "POST",
            path,
            &headers,
            Some(&format!("\"{i}\"")),
        )
        .unwrap();
        assert_eq!(r.status, 202, "{}", r.body);
    }
}

fn hop<'a>(hops: &'a [Hop], label: &str) -> &'a Hop {
    hops.iter()
        .find(|h| h.hop == label)
        .unwrap_or_else(|| panic!("no hop {label:?} in {hops:?}"))
}

/// A Sequence of `steps` into which `n` events were posted has finished with all of
/// them: step 0 read `n`, each next step read what the one before stored as replies,
/// and every step finished all it read. Its sinks hold all they will get.
fn wait_sequence_settled(p: &Platform, name: &str, steps: usize, n: u64) -> Vec<Hop> {
    p.wait_deliveries(
        "sequences",
        name,
        Duration::from_secs(90),
        "every event through every step",
        |hops| {
            hops.len() == steps
                && hops.iter().all(Hop::settled)
                && (0..steps).all(|i| {
                    let read = hop(hops, &format!("step {i}")).count("received");
                    let fed = match i {
                        0 => n,
                        _ => hop(hops, &format!("step {}", i - 1)).count("replied"),
                    };
                    read == fed
                })
        },
    )
}

/// A Parallel of `branches` into which `n` events were posted has finished with all
/// of them: each branch's filter read `n`, each branch read what its filter let
/// through, and every hop finished all it read. Its sinks hold all they will get.
fn wait_parallel_settled(p: &Platform, name: &str, branches: usize, n: u64) -> Vec<Hop> {
    p.wait_deliveries(
        "parallels",
        name,
        Duration::from_secs(90),
        "every event through every branch",
        |hops| {
            hops.len() == 2 * branches
                && hops.iter().all(Hop::settled)
                && (0..branches).all(|i| {
                    let filter = hop(hops, &format!("branch {i} filter"));
                    filter.count("received") == n
                        && hop(hops, &format!("branch {i}")).count("received")
                            == filter.count("replied")
                })
        },
    )
}

fn wait_ready(p: &Platform, kind: &str, name: &str) -> String {
    let o = p.wait_ready(kind, name, Duration::from_secs(30));
    o["status"]["address"]["url"].as_str().unwrap().to_owned()
}

#[test]
fn a_sequence_of_three_steps_carries_every_event_to_its_reply() {
    let p = Platform::start(RuntimeKind::Process);
    let (reply, received) = recorder();
    // The middle step fails half of its requests: retries carry the events through.
    let (one, two, three) = (
        appender("one", false),
        appender("two", true),
        appender("three", false),
    );
    let manifest = format!(
        "apiVersion: flows.knative.dev/v1
kind: Sequence
metadata:
  name: words
spec:
  steps:
    - uri: http://127.0.0.1:{one}/
    - uri: http://127.0.0.1:{two}/
      delivery:
        retry: 5
        backoffDelay: PT0.01S
    - uri: http://127.0.0.1:{three}/
  reply:
    uri: http://127.0.0.1:{reply}/
"
    );
    let path = write_manifest(&p.data_dir, "sequence.yaml", &manifest);
    let applied = p.paas_ok(&["apply", "-f", path.to_str().unwrap()]);
    assert!(applied.contains("created"), "{applied}");
    let address = wait_ready(&p, "sequence", "words");
    assert_eq!(
        address,
        format!(
            "http://channel-ingress.localhost:{}/default/words-kn-sequence-0",
            p.http_port
        )
    );
    let listed = p.paas_ok(&["get", "sequences"]);
    assert!(listed.contains("words") && listed.contains('3'), "{listed}");

    post_events(&p, "/default/words-kn-sequence-0", "w", 100, 0);
    wait_count("the reply", &received, 100, &p);
    let received = received.lock().unwrap();
    for i in 0..100 {
        assert_eq!(
            received[&format!("w-{i}")].body,
            format!("\"{i} one two three\""),
            "event w-{i}"
        );
    }
    // The reply tells the path it took, as Knative's knativehistory does (the HTTP
    // binding percent-encodes the spaces).
    assert_eq!(
        received["w-0"].header("ce-knativehistory").replace("%20", " "),
        "knative-channel-default-words-kn-sequence-0; knative-channel-default-words-kn-sequence-1; knative-channel-default-words-kn-sequence-2"
    );

    drop(received);

    // describe shows each hop: where it reads, where it delivers, what happened.
    wait_sequence_settled(&p, "words", 3, 100);
    let described = p.paas_ok(&["describe", "sequence", "words"]);
    println!("{described}");
    for (i, port) in [one, two, three].into_iter().enumerate() {
        let hop = format!(
            "step {i}: knative-channel-default-words-kn-sequence-{i} -> http://127.0.0.1:{port}/"
        );
        assert!(described.contains(&hop), "{hop}\n{described}");
    }
    assert!(
        described.contains(&format!("Reply:        http://127.0.0.1:{reply}/")),
        "{described}"
    );
    for i in 0..3 {
        let at = described.find(&format!("step {i}:")).unwrap();
        assert!(
            described[at..]
                .lines()
                .nth(1)
                .unwrap()
                .contains("100 received, 0 filtered out, 100 delivered, 0 dead-lettered"),
            "step {i}\n{described}"
        );
    }
    assert!(described.contains("last: delivered w-"), "{described}");

    // Deleting the sequence takes its channels with it.
    p.paas_ok(&["delete", "sequence", "words"]);
    let host = format!("channel-ingress.localhost:{}", p.http_port);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = http(
            p.http_port,
            &host,
            "POST",
            "/default/words-kn-sequence-0",
            &[
                ("ce-specversion", "1.0"),
                ("ce-id", "late"),
                ("ce-source", "/e2e"),
                ("ce-type", "dev.paas.words"),
            ],
            Some(""),
        )
        .unwrap();
        if r.status == 404 {
            assert!(r.body.contains("no channel"), "{}", r.body);
            break;
        }
        assert!(Instant::now() < deadline, "{} {}", r.status, r.body);
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_parallel_sends_each_event_to_the_branch_whose_filter_takes_it() {
    let p = Platform::start(RuntimeKind::Process);
    // Filters answer with the event when its number has their parity, else with nothing.
    let filter = |even: bool| {
        event_server(move |event| {
            let n: u64 = serde_json::from_str::<String>(&event.body)
                .unwrap()
                .parse()
                .unwrap();
            if (n % 2 == 0) == even {
                reply_with(&event, None, &event.body)
            } else {
                ACCEPTED.to_owned()
            }
        })
    };
    // Subscribers count what they get and answer with a reply event.
    let subscriber = |branch: &'static str| {
        let got: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let g = got.clone();
        let port = event_server(move |event| {
            let id = event.header("ce-id").to_owned();
            g.lock().unwrap().insert(id.clone(), event.body.clone());
            reply_with(&event, Some(&format!("{id}-{branch}")), &event.body)
        });
        (port, got)
    };
    let (even_filter, odd_filter) = (filter(true), filter(false));
    let (even_port, even) = subscriber("even");
    let (odd_port, odd) = subscriber("odd");
    let (reply, replies) = recorder();
    let manifest = format!(
        "apiVersion: flows.knative.dev/v1
kind: Parallel
metadata:
  name: parity
spec:
  branches:
    - filter:
        uri: http://127.0.0.1:{even_filter}/
      subscriber:
        uri: http://127.0.0.1:{even_port}/
    - filter:
        uri: http://127.0.0.1:{odd_filter}/
      subscriber:
        uri: http://127.0.0.1:{odd_port}/
  reply:
    uri: http://127.0.0.1:{reply}/
"
    );
    let path = write_manifest(&p.data_dir, "parallel.yaml", &manifest);
    p.paas_ok(&["apply", "-f", path.to_str().unwrap()]);
    let address = wait_ready(&p, "parallel", "parity");
    assert!(
        address.ends_with("/default/parity-kn-parallel"),
        "{address}"
    );
    let listed = p.paas_ok(&["get", "parallels"]);
    assert!(listed.contains("parity"), "{listed}");

    post_events(&p, "/default/parity-kn-parallel", "n", 100, 0);
    wait_count("the top-level reply", &replies, 100, &p);
    // The platform finished with every event on every hop, those the filters kept
    // out included: what the branches hold now is all they will get.
    let hops = wait_parallel_settled(&p, "parity", 2, 100);
    for i in 0..2 {
        assert_eq!(
            hop(&hops, &format!("branch {i}")).count("delivered"),
            50,
            "{hops:?}"
        );
    }
    let even = even.lock().unwrap();
    let odd = odd.lock().unwrap();
    println!("even branch: {}, odd branch: {}", even.len(), odd.len());
    assert_eq!(even.len(), 50);
    assert_eq!(odd.len(), 50);
    for i in 0..100 {
        let (mine, other, tag) = if i % 2 == 0 {
            (&even, &odd, "even")
        } else {
            (&odd, &even, "odd")
        };
        assert!(
            mine.contains_key(&format!("n-{i}")),
            "n-{i} missed its branch"
        );
        assert!(
            !other.contains_key(&format!("n-{i}")),
            "n-{i} in the wrong branch"
        );
        assert!(
            replies
                .lock()
                .unwrap()
                .contains_key(&format!("n-{i}-{tag}")),
            "the reply of n-{i}"
        );
    }
    assert_eq!(replies.lock().unwrap().len(), 100);
}

#[test]
fn an_ordered_sequence_keeps_each_partition_keys_order_through_retries() {
    let p = Platform::start(RuntimeKind::Process);
    let order: Arc<Mutex<Vec<String>>> = Arc::default();
    let o = order.clone();
    let reply = event_server(move |event| {
        o.lock().unwrap().push(event.header("ce-id").to_owned());
        ACCEPTED.to_owned()
    });
    // The first step fails every event's first attempt: unordered retries would
    // overtake.
    let (one, two) = (appender("one", true), appender("two", false));
    let manifest = format!(
        "apiVersion: flows.knative.dev/v1
kind: Sequence
metadata:
  name: ordered
  annotations:
    kafka.eventing.knative.dev/delivery.order: ordered
spec:
  steps:
    - uri: http://127.0.0.1:{one}/
      delivery:
        retry: 5
        backoffDelay: PT0.01S
    - uri: http://127.0.0.1:{two}/
  reply:
    uri: http://127.0.0.1:{reply}/
"
    );
    let path = write_manifest(&p.data_dir, "ordered.yaml", &manifest);
    p.paas_ok(&["apply", "-f", path.to_str().unwrap()]);
    wait_ready(&p, "sequence", "ordered");
    post_events(&p, "/default/ordered-kn-sequence-0", "o", 60, 3);
    let deadline = Instant::now() + Duration::from_secs(60);
    while order.lock().unwrap().len() < 60 {
        assert!(Instant::now() < deadline, "{:?}", order.lock().unwrap());
        std::thread::sleep(Duration::from_millis(100));
    }
    let order = order.lock().unwrap();
    for k in 0..3 {
        let seen: Vec<usize> = order
            .iter()
            .map(|id| id[2..].parse::<usize>().unwrap())
            .filter(|n| n % 3 == k)
            .collect();
        let expected: Vec<usize> = (0..60).filter(|n| n % 3 == k).collect();
        assert_eq!(seen, expected, "key k{k} out of order");
    }
}

#[test]
fn a_sequence_of_three_services_at_zero_carries_a_thousand_events_in_key_order() {
    let p = Platform::start_with(RuntimeKind::Process, paas_e2e::FAST_SCALE_TO_ZERO);
    let display = paas_e2e::binary("event-display");
    for (service, word) in [("step1", "one"), ("step2", "two"), ("step3", "three")] {
        p.paas_ok(&[
            "deploy",
            service,
            "--cmd",
            display.to_str().unwrap(),
            "--env",
            &format!("APPEND={word}"),
        ]);
    }
    for revision in ["step1-00001", "step2-00001", "step3-00001"] {
        p.wait_revision(revision, Duration::from_secs(60), "scale to zero", |r| {
            r["status"]["actualReplicas"] == 0 && r["status"]["desiredReplicas"] == 0
        });
    }
    let order: Arc<Mutex<Vec<ReceivedEvent>>> = Arc::default();
    let o = order.clone();
    let reply = event_server(move |event| {
        o.lock().unwrap().push(event);
        ACCEPTED.to_owned()
    });
    let manifest = format!(
        "apiVersion: flows.knative.dev/v1
kind: Sequence
metadata:
  name: words
  annotations:
    kafka.eventing.knative.dev/delivery.order: ordered
spec:
  steps:
    - ref:
        apiVersion: serving.knative.dev/v1
        kind: Service
        name: step1
    - ref:
        apiVersion: serving.knative.dev/v1
        kind: Service
        name: step2
    - ref:
        apiVersion: serving.knative.dev/v1
        kind: Service
        name: step3
  reply:
    uri: http://127.0.0.1:{reply}/
"
    );
    let path = write_manifest(&p.data_dir, "words.yaml", &manifest);
    p.paas_ok(&["apply", "-f", path.to_str().unwrap()]);
    wait_ready(&p, "sequence", "words");
    let host = format!("channel-ingress.localhost:{}", p.http_port);
    for batch in 0..50 {
        let events: Vec<String> = (batch * 20..batch * 20 + 20)
            .map(|i| {
                format!(
                    r#"{{"specversion":"1.0","id":"e-{i}","source":"/e2e","type":"dev.paas.words","partitionkey":"k{}","datacontenttype":"application/json","data":"{i}"}}"#,
                    i % 10
                )
            })
            .collect();
        let r = http(
            p.http_port,
            &host,
            "POST",
            "/default/words-kn-sequence-0",
            &[("content-type", "application/cloudevents-batch+json")],
            Some(&format!("[{}]", events.join(","))),
        )
        .unwrap();
        assert_eq!(r.status, 202, "{}", r.body);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while order.lock().unwrap().len() < 1000 {
        assert!(
            Instant::now() < deadline,
            "{} of 1000 arrived\n{}",
            order.lock().unwrap().len(),
            p.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let order = order.lock().unwrap();
    let mut per_key: HashMap<String, Vec<usize>> = HashMap::new();
    let mut ids = HashSet::new();
    for e in order.iter() {
        let n: usize = e.header("ce-id")[2..].parse().unwrap();
        assert_eq!(e.body, format!("\"{n} one two three\""), "e-{n}");
        ids.insert(n);
        per_key
            .entry(e.header("ce-partitionkey").to_owned())
            .or_default()
            .push(n);
    }
    assert_eq!(ids.len(), 1000, "lost events");
    println!(
        "1000 events through three services woken from zero, {} deliveries at the reply",
        order.len()
    );
    for (key, ns) in per_key {
        assert!(
            ns.windows(2).all(|w| w[0] < w[1]),
            "{key} out of order: {ns:?}"
        );
    }
}

/// samples/eventing/parallel.yaml as it is, its Services run as processes: the
/// event-display filters pass each event to exactly one branch, and every branch's
/// reply reaches the top-level reply.
#[test]
fn the_parallel_sample_sends_each_event_through_the_filter_services() {
    let p = Platform::start(RuntimeKind::Process);
    let display = paas_e2e::binary("event-display");
    p.deploy_event_display("event-display");
    let sample = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../samples/eventing/parallel.yaml"
    ))
    .unwrap();
    let image = "- image: paas-samples/event-display:latest";
    assert!(sample.contains(image));
    let local = sample.replace(
        image,
        &format!(
            "{image}\n          command: [{:?}]",
            display.to_str().unwrap()
        ),
    );
    let path = write_manifest(&p.data_dir, "parallel.yaml", &local);
    p.paas_ok(&["apply", "-f", path.to_str().unwrap()]);
    wait_ready(&p, "parallel", "parity");

    let host = format!("channel-ingress.localhost:{}", p.http_port);
    for i in 0..100 {
        let id = format!("n-{i}");
        let parity = if i % 2 == 0 { "even" } else { "odd" };
        let r = http(
            p.http_port,
            &host,
            "POST",
            "/default/parity-kn-parallel",
            &[
                ("ce-specversion", "1.0"),
                ("ce-id", id.as_str()),
                ("ce-source", "/e2e"),
                ("ce-type", "dev.paas.number"),
                ("content-type", "application/json"),
            ],
            Some(&format!("\"{i} is {parity}\"")),
        )
        .unwrap();
        assert_eq!(r.status, 202, "{}", r.body);
    }
    // Every hop finished all it read, and the branches delivered their replies to
    // the top-level reply: the display holds all it will get.
    wait_parallel_settled(&p, "parity", 2, 100);
    let replies = p.displayed("event-display");
    let mut data: Vec<String> = replies
        .iter()
        .map(|e| e["data"].as_str().unwrap().to_owned())
        .collect();
    data.sort();
    let mut expected: Vec<String> = (0..100)
        .map(|i| {
            let parity = if i % 2 == 0 { "even" } else { "odd" };
            format!("\"{i} is {parity} checked\"")
        })
        .collect();
    expected.sort();
    assert_eq!(data, expected, "each event once, through its own branch");

    let described = p.paas_ok(&["describe", "parallel", "parity"]);
    for (hop, counts) in [
        (
            "branch 0 filter",
            "100 received, 0 filtered out, 100 delivered",
        ),
        ("branch 0:", "50 received, 0 filtered out, 50 delivered"),
        (
            "branch 1 filter",
            "100 received, 0 filtered out, 100 delivered",
        ),
        ("branch 1:", "50 received, 0 filtered out, 50 delivered"),
    ] {
        let at = described
            .find(hop)
            .unwrap_or_else(|| panic!("{hop}\n{described}"));
        assert!(
            described[at..].lines().nth(1).unwrap().contains(counts),
            "{hop}: {counts}\n{described}"
        );
    }
}
