//! The store's own check of [`crate::text`]'s rule: every method refuses text with NUL before
//! any statement runs, with [`StoreError::InvalidText`] naming where.
//!
//! The routes refuse NUL already, each in the way that fits its input; this check is for every
//! other way text reaches the store (a worker, a command, a route written tomorrow), so that
//! PostgreSQL never fails a statement over it and SQLite never keeps what PostgreSQL would
//! refuse. Each input type lists its text fields below by destructuring itself whole, so a field
//! added to it does not compile until it is listed here too.

use super::catalog::{FieldMapping, NewEvent, NewSyncRun, ProductRecord, RunError, RunOutcome};
use super::{
    AttemptRecord, DocumentFields, FailurePolicy, MerchantSettings, NewApiKey, NewChatSession,
    NewDocument, NewExchange, NewMerchant, NewWebhookEndpoint, PageKey, ProductQuery, StoreError,
    StoreResult, SyncConfigFields, WebhookAttempt, WebhookEndpointUpdate,
};
use crate::text::{Text, first_nul};

/// Refuses a call whose `inputs` (each named as the caller knows it; `""` for a struct whose
/// fields name themselves) hold NUL.
pub(super) fn refuse_nul(inputs: &[(&str, &dyn Text)]) -> StoreResult<()> {
    match first_nul(inputs) {
        Some(field) => Err(StoreError::InvalidText { field }),
        None => Ok(()),
    }
}

/// A struct's path below itself: `.field…` of its first field with NUL.
fn fields(fields: &[(&str, &dyn Text)]) -> Option<String> {
    first_nul(fields).map(|path| format!(".{path}"))
}

impl Text for NewMerchant {
    fn nul_at(&self) -> Option<String> {
        let Self {
            id,
            name,
            allowed_domains,
            plan,
        } = self;
        fields(&[
            ("id", id),
            ("name", name),
            ("allowedDomains", allowed_domains),
            ("plan", plan),
        ])
    }
}

impl Text for MerchantSettings {
    fn nul_at(&self) -> Option<String> {
        let Self {
            allowed_domains,
            plan,
            may_share_domains: _,
        } = self;
        fields(&[("allowedDomains", allowed_domains), ("plan", plan)])
    }
}

impl Text for NewApiKey {
    fn nul_at(&self) -> Option<String> {
        let Self {
            id,
            merchant_id,
            kind,
            env,
            prefix,
            key_hash,
            permissions,
            name,
        } = self;
        fields(&[
            ("id", id),
            ("merchantId", merchant_id),
            ("kind", kind),
            ("env", env),
            ("prefix", prefix),
            ("keyHash", key_hash),
            ("permissions", permissions),
            ("name", name),
        ])
    }
}

impl Text for DocumentFields {
    fn nul_at(&self) -> Option<String> {
        let Self {
            title,
            body,
            tags,
            url,
        } = self;
        fields(&[
            ("title", title),
            ("body", body),
            ("tags", tags),
            ("url", url),
        ])
    }
}

impl Text for NewDocument {
    fn nul_at(&self) -> Option<String> {
        let Self {
            id,
            merchant_id,
            fields: document,
        } = self;
        fields(&[("id", id), ("merchantId", merchant_id), ("", document)])
    }
}

impl Text for PageKey {
    fn nul_at(&self) -> Option<String> {
        let Self { created_at: _, id } = self;
        fields(&[("id", id)])
    }
}

impl Text for NewChatSession {
    fn nul_at(&self) -> Option<String> {
        let Self {
            id,
            merchant_id,
            user_id,
        } = self;
        fields(&[("id", id), ("merchantId", merchant_id), ("userId", user_id)])
    }
}

impl Text for FieldMapping {
    fn nul_at(&self) -> Option<String> {
        let Self {
            sku,
            title,
            description,
            price,
            image_url,
            category,
            in_stock,
        } = self;
        fields(&[
            ("sku", sku),
            ("title", title),
            ("description", description),
            ("price", price),
            ("imageUrl", image_url),
            ("category", category),
            ("inStock", in_stock),
        ])
    }
}

impl Text for SyncConfigFields {
    fn nul_at(&self) -> Option<String> {
        let Self {
            sync_type,
            schedule,
            source_type,
            source_url,
            field_mapping,
            status,
            source_auth,
            next_run_at: _,
        } = self;
        fields(&[
            ("syncType", sync_type),
            ("schedule", schedule),
            ("sourceType", source_type),
            ("sourceUrl", source_url),
            ("fieldMapping", field_mapping),
            ("status", status),
            ("sourceAuth", source_auth),
        ])
    }
}

impl Text for NewSyncRun {
    fn nul_at(&self) -> Option<String> {
        let Self {
            id,
            merchant_id,
            trigger,
            source_type,
            mode,
        } = self;
        fields(&[
            ("id", id),
            ("merchantId", merchant_id),
            ("trigger", trigger),
            ("sourceType", source_type),
            ("mode", mode),
        ])
    }
}

impl Text for ProductRecord {
    fn nul_at(&self) -> Option<String> {
        let Self {
            sku,
            title,
            description,
            price: _,
            image_url,
            category,
            in_stock: _,
        } = self;
        fields(&[
            ("sku", sku),
            ("title", title),
            ("description", description),
            ("imageUrl", image_url),
            ("category", category),
        ])
    }
}

impl Text for RunError {
    fn nul_at(&self) -> Option<String> {
        let Self {
            row: _,
            field,
            message,
        } = self;
        fields(&[("field", field), ("message", message)])
    }
}

impl Text for RunOutcome {
    fn nul_at(&self) -> Option<String> {
        let Self {
            failure,
            processed: _,
            failed: _,
            errors,
            error_count: _,
            keep_only,
            delete,
        } = self;
        fields(&[
            ("failure", failure),
            ("errors", errors),
            ("keepOnly", keep_only),
            ("delete", delete),
        ])
    }
}

impl Text for NewEvent<'_> {
    fn nul_at(&self) -> Option<String> {
        let Self {
            merchant_id,
            event_type,
            data,
        } = self;
        fields(&[
            ("merchantId", merchant_id),
            ("eventType", event_type),
            ("data", data),
        ])
    }
}

impl Text for NewExchange {
    fn nul_at(&self) -> Option<String> {
        let Self {
            merchant_id,
            session_id,
            question,
            answer,
            recommendations,
            sources,
            event,
            cut_short: _,
        } = self;
        fields(&[
            ("merchantId", merchant_id),
            ("sessionId", session_id),
            ("question", question),
            ("answer", answer),
            ("recommendations", recommendations),
            ("sources", sources),
            ("event", event),
        ])
    }
}

impl Text for ProductQuery<'_> {
    fn nul_at(&self) -> Option<String> {
        let Self {
            terms,
            min_price: _,
            max_price: _,
            in_stock_only: _,
            limit: _,
        } = self;
        fields(&[("terms", terms)])
    }
}

impl Text for NewWebhookEndpoint {
    fn nul_at(&self) -> Option<String> {
        let Self {
            id,
            merchant_id,
            url,
            events,
            description,
            secret,
        } = self;
        fields(&[
            ("id", id),
            ("merchantId", merchant_id),
            ("url", url),
            ("events", events),
            ("description", description),
            ("secret", secret),
        ])
    }
}

impl Text for WebhookEndpointUpdate {
    fn nul_at(&self) -> Option<String> {
        let Self {
            url,
            events,
            description,
            enabled: _,
        } = self;
        fields(&[
            ("url", url),
            ("events", events),
            ("description", description),
        ])
    }
}

impl Text for WebhookAttempt {
    fn nul_at(&self) -> Option<String> {
        let Self {
            delivery_id,
            attempted_at: _,
            status_code: _,
            duration_ms: _,
            error,
            response_excerpt,
        } = self;
        fields(&[
            ("deliveryId", delivery_id),
            ("error", error),
            ("responseExcerpt", response_excerpt),
        ])
    }
}

impl Text for AttemptRecord {
    fn nul_at(&self) -> Option<String> {
        let Self {
            delivery_id,
            endpoint_id,
            attempt,
            next: _,
        } = self;
        fields(&[
            ("deliveryId", delivery_id),
            ("endpointId", endpoint_id),
            ("attempt", attempt),
        ])
    }
}

impl Text for FailurePolicy {
    fn nul_at(&self) -> Option<String> {
        let Self {
            max_consecutive_failures: _,
            disable_now,
        } = self;
        fields(&[("disableNow", disable_now)])
    }
}

impl Text for (AttemptRecord, FailurePolicy) {
    fn nul_at(&self) -> Option<String> {
        let (record, policy) = self;
        fields(&[("", record), ("policy", policy)])
    }
}
