//! `[routes.<group>]`: the switches of the route groups, the original design's rollback plan
//! ("disable the product sync routes") as configuration that a reload applies.
//!
//! `/health` and `/ready` have no switch: a probe must always reach them.

use serde::{Deserialize, Serialize};

/// One switch per route group that can be turned off.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutesConfig {
    /// `/v1/widget.js` and the widget's load reports.
    pub widget: RouteSwitch,
    /// `/api/chat/**`.
    pub chat: RouteSwitch,
    /// `/api/sessions/**`.
    pub sessions: RouteSwitch,
    /// `/api/documents/**`.
    pub documents: RouteSwitch,
    /// `/api/products/**`.
    pub products: RouteSwitch,
    /// `/api/merchants/:id/sync/**` (configure, upload, trigger, status, history), the
    /// merchant's platform push excepted.
    pub sync: RouteSwitch,
    /// `/api/merchants/:id/sync/webhook`: pushes from the merchant's platform.
    pub sync_webhook: RouteSwitch,
    /// The rest of `/api/merchants/:id/**`: the developer portal's API.
    pub portal: RouteSwitch,
}

/// Whether a route group is served, and what a client is told while it is not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteSwitch {
    /// `false`: the edge answers the group 503 `ROUTE_DISABLED` and calls no backend.
    pub enabled: bool,
    /// The `Retry-After` of those answers, seconds.
    pub retry_after_secs: u64,
}

impl Default for RouteSwitch {
    fn default() -> Self {
        Self {
            enabled: true,
            retry_after_secs: 60,
        }
    }
}

impl RoutesConfig {
    /// Every switch with the name of its table (`routes.<name>`).
    pub fn switches(&self) -> [(&'static str, &RouteSwitch); 8] {
        [
            ("widget", &self.widget),
            ("chat", &self.chat),
            ("sessions", &self.sessions),
            ("documents", &self.documents),
            ("products", &self.products),
            ("sync", &self.sync),
            ("sync_webhook", &self.sync_webhook),
            ("portal", &self.portal),
        ]
    }
}
