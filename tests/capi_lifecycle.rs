//! Destroying handles while other threads use them, and handle leak accounting. Its own
//! test binary, so no other test's handles are counted.

mod common;


use common::Peers;
use common::capi::{Client, c, code, take, text};
use dpopkit::capi::common::*;
use dpopkit::capi::http::*;
use dpopkit::dpopkit_result as R;






#[test]
fn destroy_during_use_and_no_leaked_handles() {
    let before = dpopkit_live_handles();
    let peers = Peers::start(&[]);
    {
        let cl = Client::new(&peers);
        assert!(cl.get(&peers.api).is_some());
        // Destroying the key object does not break the Http, which holds its own reference.
        assert_eq!(dpopkit_destroy(cl.key), 1);
        assert!(cl.get(&peers.api).is_some());
        // Destroying the Http while other threads use it: they finish or get INVALID_HANDLE.
        let http = cl.http;
        let api = peers.api.clone();
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    let api = api.clone();
                    s.spawn(move || {
                        // Keep calling until the handle goes away (bounded).
                        for _ in 0..5000 {
                            if take(unsafe { dpopkit_http_quick_get_str(http, c(&api).as_ptr()) }).is_none() {
                                assert_eq!(code(0), R::InvalidHandle as u32, "{}", text(0));
                                return 1;
                            }
                        }
                        0
                    })
                })
                .collect();
            std::thread::sleep(std::time::Duration::from_millis(20));
            assert_eq!(dpopkit_destroy(http), 1);
            let invalid: i32 = workers.into_iter().map(|w| w.join().unwrap()).sum();
            assert_eq!(invalid, 4, "every thread's calls after destroy fail with INVALID_HANDLE");
        });
    }
    assert_eq!(dpopkit_live_handles(), before, "handles leaked");
}
