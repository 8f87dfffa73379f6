//! Measures the resident memory of 10,000 lean pods decoded from a Pod list (JSON file given as
//! the first argument): `cargo run --release --example lean_pod_size -- pods.json`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts live heap bytes, so the figure is the pods' own size, not the allocator's history.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() {
    let path = std::env::args().nth(1).expect("a Pod List JSON file");
    let text = std::fs::read_to_string(path).expect("readable");
    let list: serde_json::Value = serde_json::from_str(&text).expect("json");
    let items: Vec<String> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i.to_string())
        .collect();
    drop(list);
    drop(text);
    let before = LIVE.load(Ordering::Relaxed);
    let pods: Vec<Arc<skewguard::core::snapshot::LeanPod>> = items
        .iter()
        .map(|i| {
            let mut pod = serde_json::from_str(i).expect("pod");
            skewguard::shell::controller::stores::prune_pod(&mut pod);
            Arc::new(pod)
        })
        .collect();
    let after = LIVE.load(Ordering::Relaxed);
    let full: Vec<k8s_openapi::api::core::v1::Pod> = items
        .iter()
        .map(|i| serde_json::from_str(i).expect("pod"))
        .collect();
    let with_full = LIVE.load(Ordering::Relaxed);
    println!(
        "{} lean pods: {} KiB of heap, {} bytes each (full Pods: {} bytes each); process RSS {} KiB",
        pods.len(),
        (after - before) / 1024,
        (after - before) / pods.len().max(1),
        (with_full - after) / full.len().max(1),
        rss_kib()
    );
}
