//! End-to-end benchmark: raw-TLS baseline, our stack, protocol-bound scaling, latency,
//! memory of the CLI, drains, and Web Push against legacy HTTP, all measured in the same
//! run and reported as ratios.
//!
//! `cargo bench --bench throughput -- [--messages N] [--ack-delay-ms R] [--json]
//! [--memory-only | --no-memory] [--memory-lines A,B] [--webpush-only] [--pushes P]
//! [--client-cpu-only] [--relay-only]`
//!
//! Built without optimizations (as `cargo test` does) it runs a seconds-long smoke version.

mod baseline;
mod client_cpu;
mod cpu;
mod memory;
#[allow(dead_code)] // the tests' harness; the bench uses a part of it
#[path = "../../tests/common/redis_server.rs"]
mod redis_server;
mod relay;
mod stack;
mod webpush;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::time::Duration;

use serde_json::json;

/// The system allocator, or mimalloc when [`client_cpu::MIMALLOC`] is in the environment
/// (decided at the first allocation, for the life of the process), counting allocations
/// (figure 8 reports them per message).
struct Counting;

/// 0: not decided yet; 1: the system allocator; 2: mimalloc.
static ALLOCATOR: AtomicU8 = AtomicU8::new(0);

fn on_mimalloc() -> bool {
    match ALLOCATOR.load(Relaxed) {
        1 => false,
        2 => true,
        _ => {
            // SAFETY: a NUL-terminated name; getenv does not allocate. Threads racing here
            // read the same environment and decide alike.
            let on = !unsafe { libc::getenv(client_cpu::MIMALLOC.as_ptr()) }.is_null();
            ALLOCATOR.store(if on { 2 } else { 1 }, Relaxed);
            on
        }
    }
}

// SAFETY: forwards to one allocator for the whole life of the process; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        client_cpu::ALLOCATIONS.fetch_add(1, Relaxed);
        if on_mimalloc() {
            unsafe { mimalloc::MiMalloc.alloc(layout) }
        } else {
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if on_mimalloc() {
            unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
        } else {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        client_cpu::ALLOCATIONS.fetch_add(1, Relaxed);
        if on_mimalloc() {
            unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
        } else {
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const WINDOW: usize = 100;
const DRAIN_EVERY: Duration = Duration::from_millis(500);
/// Alternating runs of figures 1, 2 and 6; each reports the median.
const ROUNDS: usize = 3;

struct Args {
    messages: usize,
    ack_delay: Duration,
    json_only: bool,
    /// Only the stack throughput run (for profiling).
    stack_only: bool,
    /// Only figure 5 (memory of `gcm-ccs send`).
    memory_only: bool,
    /// Skip figure 5.
    no_memory: bool,
    /// Input sizes of figure 5, smallest first.
    memory_lines: Vec<usize>,
    /// Only figure 7 (Web Push against legacy HTTP).
    webpush_only: bool,
    /// Pushes (and HTTP messages) of figure 7.
    pushes: usize,
    /// Only figure 8 (client CPU per message, the emulator in its own process).
    client_cpu_only: bool,
    /// Only figure 9 (the relay against `send`, and relay scaling).
    relay_only: bool,
}

fn args() -> Args {
    let mut a = Args {
        messages: if cfg!(debug_assertions) {
            2_000
        } else {
            200_000
        },
        ack_delay: Duration::from_millis(50),
        json_only: false,
        stack_only: false,
        memory_only: false,
        no_memory: false,
        memory_lines: if cfg!(debug_assertions) {
            vec![2_000, 10_000]
        } else {
            vec![100_000, 1_000_000]
        },
        webpush_only: false,
        pushes: if cfg!(debug_assertions) { 100 } else { 20_000 },
        client_cpu_only: false,
        relay_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--messages" => {
                a.messages = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--messages N")
            }
            "--ack-delay-ms" => {
                a.ack_delay = Duration::from_millis(
                    it.next()
                        .and_then(|v| v.parse().ok())
                        .expect("--ack-delay-ms R"),
                )
            }
            "--json" => a.json_only = true,
            "--stack-only" => a.stack_only = true,
            "--memory-only" => a.memory_only = true,
            "--no-memory" => a.no_memory = true,
            "--webpush-only" => a.webpush_only = true,
            "--client-cpu-only" => a.client_cpu_only = true,
            "--relay-only" => a.relay_only = true,
            "--pushes" => a.pushes = it.next().and_then(|v| v.parse().ok()).expect("--pushes P"),
            "--memory-lines" => {
                a.memory_lines = it
                    .next()
                    .and_then(|v| v.split(',').map(|n| n.parse().ok()).collect())
                    .filter(|v: &Vec<usize>| !v.is_empty())
                    .expect("--memory-lines A,B")
            }
            _ => {} // cargo bench passes --bench
        }
    }
    a
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, |c| c.get())
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_unstable_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn quantile_ms(v: &mut [Duration], q: f64) -> f64 {
    v.sort_unstable();
    let i = ((v.len().saturating_sub(1)) as f64 * q).round() as usize;
    v.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn main() {
    // Figure 5 re-executes this binary to start the CLI from a small process.
    memory::launcher();
    // Figure 8 re-executes this binary as a client of an emulator process.
    client_cpu::child();
    run();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn run() {
    let a = args();
    let texts = stack::payloads();
    let stanzas = stack::raw_stanzas();
    let n = a.messages;
    if a.memory_only {
        let mem = memory::measure(&a.memory_lines).await;
        if !a.json_only {
            mem.print();
        }
        println!("{}", json!({ "cores": cores(), "memory": mem.json() }));
        return;
    }
    if a.webpush_only {
        let figure = webpush::measure(a.pushes, &texts).await;
        if !a.json_only {
            figure.print();
        }
        println!("{}", json!({ "cores": cores(), "webpush": figure.json() }));
        return;
    }
    if a.client_cpu_only {
        let figure = client_cpu::measure(n, ROUNDS).await;
        if !a.json_only {
            figure.print();
        }
        println!(
            "{}",
            json!({ "cores": cores(), "client_cpu": figure.json() })
        );
        return;
    }
    if a.relay_only {
        let figure = relay::measure(n, a.ack_delay).await;
        if !a.json_only {
            figure.print();
        }
        println!("{}", json!({ "cores": cores(), "relay": figure.json() }));
        return;
    }
    if a.stack_only {
        let emu = stack::emulator(Duration::ZERO).await;
        let client = stack::client(&emu, 1).await;
        let ours = rate(n, stack::throughput(&client, &texts, n).await);
        eprintln!("our stack, 1 conn     {ours:>10.0} msgs/s");
        return;
    }

    // 1. The raw TLS baseline, 2. our stack on one connection with instant acks (client and
    // emulator in this process), and 6. the same with a drain every `DRAIN_EVERY`: the runs
    // alternate and the medians are compared, so a slow moment of the machine does not land
    // on one side only. CPU per message is from the first round.
    let mut raws = Vec::new();
    let mut raw_cpu = 0.0;
    let mut plain = Vec::new();
    let mut drained = Vec::new();
    let mut ours_cpu = 0.0;
    let mut drain_count = 0;
    for round in 0..ROUNDS {
        let raw_tls = baseline::Raw::start().await;
        let (took, cpu) = cpu::per_message(n, raw_tls.throughput(&stanzas, n, WINDOW)).await;
        raws.push(rate(n, took));
        if round == 0 {
            raw_cpu = cpu;
        }

        let emu = stack::emulator(Duration::ZERO).await;
        let client = stack::client(&emu, 1).await;
        let (took, cpu) = cpu::per_message(n, stack::throughput(&client, &texts, n)).await;
        plain.push(rate(n, took));
        if round == 0 {
            ours_cpu = cpu;
        }
        client.close().await;

        let emu = std::sync::Arc::new(stack::emulator(Duration::ZERO).await);
        let client = stack::client(&emu, 1).await;
        let drains = stack::drain_every(emu.clone(), DRAIN_EVERY);
        drained.push(rate(n, stack::throughput(&client, &texts, n).await));
        drains.abort();
        drain_count += emu.stats().drains;
        client.close().await;
    }
    let raw = median(&mut raws);
    let ours = median(&mut plain);
    let with_drains = median(&mut drained);

    // 3. Protocol-bound scaling.
    let mut scaling = Vec::new();
    for conns in [1usize, 4, 16] {
        let emu = stack::emulator(a.ack_delay).await;
        let client = stack::client(&emu, conns).await;
        let ceiling = conns as f64 * WINDOW as f64 / a.ack_delay.as_secs_f64();
        let count = ((ceiling * 3.0) as usize).clamp(2_000, n);
        let got = rate(count, stack::throughput(&client, &texts, count).await);
        scaling.push((conns, got, ceiling));
        client.close().await;
    }

    // 4. Latency at about half of (2)'s throughput, next to the raw round trip.
    let emu = stack::emulator(Duration::ZERO).await;
    let client = stack::client(&emu, 1).await;
    let count = (n / 4).max(1_000);
    let mut lat = stack::paced(&client, &texts, count, ours / 2.0).await;
    client.close().await;
    let mut rtt = baseline::Raw::start()
        .await
        .round_trips(&stanzas[0], 2_000)
        .await;

    // 7. Web Push against legacy HTTP, one connection per origin each.
    let wp = webpush::measure(a.pushes, &texts).await;

    // 8. CPU per message of the client process alone, the emulator in its own process.
    let client = client_cpu::measure(n, ROUNDS).await;

    // 9. The relay against `send`, and relay scaling.
    let relays = relay::measure(n, a.ack_delay).await;

    // 5. Peak RSS of `gcm-ccs send` on growing inputs.
    let mem = if a.no_memory {
        None
    } else {
        Some(memory::measure(&a.memory_lines).await)
    };

    let report = json!({
        "messages": n,
        "window": WINDOW,
        "cores": cores(),
        "raw_tls_msgs_per_s": raw,
        "stack_msgs_per_s": ours,
        "stack_vs_raw": ours / raw,
        "stack_runs": ROUNDS,
        "cpu_us_per_msg": { "raw_tls": raw_cpu, "stack": ours_cpu,
            "stack_vs_raw": if raw_cpu > 0.0 { ours_cpu / raw_cpu } else { 0.0 } },
        "scaling": scaling.iter().map(|(c, got, ceil)| json!({
            "connections": c, "ack_delay_ms": a.ack_delay.as_millis(), "msgs_per_s": got,
            "ceiling": ceil, "ratio": got / ceil })).collect::<Vec<_>>(),
        "drain": { "every_ms": DRAIN_EVERY.as_millis(), "drains": drain_count, "runs": ROUNDS,
            "msgs_per_s": with_drains, "dip": 1.0 - with_drains / ours },
        "latency_ms": { "rate": ours / 2.0, "p50": quantile_ms(&mut lat, 0.5),
            "p99": quantile_ms(&mut lat, 0.99), "p999": quantile_ms(&mut lat, 0.999) },
        "raw_round_trip_ms": { "p50": quantile_ms(&mut rtt, 0.5), "p99": quantile_ms(&mut rtt, 0.99) },
        "memory": mem.as_ref().map(memory::Figure::json),
        "webpush": wp.json(),
        "client_cpu": client.json(),
        "relay": relays.json(),
    });
    if !a.json_only {
        eprintln!("raw TLS baseline      {raw:>10.0} msgs/s   CPU {raw_cpu:.2} µs/msg");
        eprintln!(
            "our stack, 1 conn     {ours:>10.0} msgs/s   {:.2} of baseline   CPU {ours_cpu:.2} µs/msg",
            ours / raw
        );
        eprintln!(
            "with a drain every {:?}  {with_drains:>8.0} msgs/s   dip {:.1}% ({drain_count} drains in {ROUNDS} runs)",
            DRAIN_EVERY,
            (1.0 - with_drains / ours) * 100.0
        );
        for (c, got, ceil) in &scaling {
            eprintln!(
                "scaling {c:>2} conns      {got:>10.0} msgs/s   {:.2} of ceiling {ceil:.0}",
                got / ceil
            );
        }
        eprintln!(
            "latency at {:.0}/s   p50 {:.2} ms  p99 {:.2} ms  p999 {:.2} ms  (raw round trip p50 {:.2} ms)",
            ours / 2.0,
            report["latency_ms"]["p50"].as_f64().unwrap_or(0.0),
            report["latency_ms"]["p99"].as_f64().unwrap_or(0.0),
            report["latency_ms"]["p999"].as_f64().unwrap_or(0.0),
            report["raw_round_trip_ms"]["p50"].as_f64().unwrap_or(0.0),
        );
        wp.print();
        client.print();
        relays.print();
        if let Some(mem) = &mem {
            mem.print();
        }
    }
    println!("{report}");
}
