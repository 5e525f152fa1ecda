//! Request paths through the edge's route classifier (`mindshop_filters::route`).
//!
//! The input is a request path, as bytes (read as UTF-8, lossily). Beyond "no panic", the
//! edge's promises about it are checked:
//! - the canonical form the edge forwards classifies exactly like the raw path (same group,
//!   same merchant id) and is a sync write exactly when the raw path is, so the backend
//!   routes what the edge classified and rate-limited;
//! - the canonical form is already canonical, is the path with its empty segments dropped,
//!   and is still a valid request target whenever the raw path was one;
//! - a merchant id taken from a path is a valid id, one whole segment of that path;
//! - a portal request counts as a sync write exactly for `…/sync/{configure,trigger,upload}`.

#![no_main]

use http::Method;
use libfuzzer_sys::fuzz_target;
use mindshop_filters::route::{RouteGroup, canonical_path, classify, is_sync_write};
use mindshop_wire::merchant;

const METHODS: [Method; 7] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
];

fuzz_target!(|data: &[u8]| {
    let path = String::from_utf8_lossy(data);
    check(&path);
});

fn check(path: &str) {
    let route = classify(path);
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();

    if let Some(route) = route {
        if let Some(id) = route.merchant_id {
            assert!(merchant::is_valid_id(id), "merchant id {id:?} from {path:?}");
            assert_eq!(segments.get(2), Some(&id), "merchant id not the third segment");
        }
        if route.group == RouteGroup::Sync {
            let sync_tail = segments.get(3..).unwrap_or_default();
            for method in &METHODS {
                let expected = match sync_tail {
                    ["sync", "configure"] => *method == Method::POST || *method == Method::PUT,
                    ["sync", "trigger" | "upload"] => *method == Method::POST,
                    _ => false,
                };
                assert_eq!(
                    is_sync_write(method, path),
                    expected,
                    "is_sync_write({method}, {path:?})"
                );
            }
        }
    }

    let canonical = canonical_path(path);
    if path.starts_with('/') {
        let expected = format!("/{}", segments.join("/"));
        assert_eq!(
            canonical.as_deref().unwrap_or(path),
            expected,
            "canonical form of {path:?}"
        );
    }
    let Some(canonical) = canonical else { return };
    assert_eq!(
        canonical_path(&canonical),
        None,
        "{canonical:?} (from {path:?}) is not canonical"
    );
    assert_eq!(
        classify(&canonical),
        route,
        "{canonical:?} classifies unlike {path:?}"
    );
    for method in &METHODS {
        assert_eq!(
            is_sync_write(method, &canonical),
            is_sync_write(method, path),
            "is_sync_write({method}) differs between {path:?} and {canonical:?}"
        );
    }
    // The edge rewrites the request's URI to the canonical path; one it accepted must parse.
    if let Ok(uri) = path.parse::<http::Uri>()
        && uri.path() == path
    {
        let rewritten = canonical.parse::<http::Uri>();
        assert!(
            rewritten.as_ref().is_ok_and(|u| u.path() == canonical),
            "{canonical:?} (from {path:?}) is no valid request target: {rewritten:?}"
        );
    }
}
