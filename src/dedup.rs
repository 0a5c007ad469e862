//! The replay step of the request path: claim a verified id and say what
//! the store's answer means for this route (shadow mode, `on_store_error`);
//! then settle the claim with the application's answer.

// Every enum match here names each variant: a new one must be decided, not defaulted.
#![warn(clippy::wildcard_enum_match_arm)]

use std::sync::Arc;

use crate::config::{Mode, OnStoreError};
use crate::metrics::Reason;
use crate::replay::{Claim, Store, Ticket};
use crate::route::Route;
use crate::verify::Verified;

/// Why a verified request is not forwarded.
pub enum Repeat {
    /// Delivered before: answered `200 {"status":"duplicate"}`.
    Duplicate,
    /// Answered with this reason (`in_flight`, `replay_store_unavailable`).
    Refused(Reason),
}

/// Claims the verified id: the ticket to settle after forwarding (`None`
/// when forwarding without a replay check), or why it is not forwarded.
pub async fn claim(
    store: &Arc<Store>,
    on_store_error: OnStoreError,
    route: &Route,
    verified: &Verified,
) -> Result<Option<Ticket>, Repeat> {
    route.metrics.secret_matched(verified.secret_index());
    let message_id = verified.message_id();
    match store.claim(&route.name, verified.replay_id()).await {
        Ok(Claim::Claimed(t)) => Ok(Some(t)),
        // Shadow mode changes nothing the application sees: a repeat is
        // counted as enforce mode would answer it, and forwarded.
        Ok(Claim::Duplicate) if route.mode == Mode::Shadow => {
            route.metrics.shadow_rejection(None);
            tracing::warn!(route = %route.name, message_id, "shadow mode: would have answered duplicate; forwarding anyway");
            Ok(None)
        }
        Ok(Claim::InFlight) if route.mode == Mode::Shadow => {
            route.metrics.shadow_rejection(Some(Reason::InFlight));
            tracing::warn!(route = %route.name, message_id, "shadow mode: would have answered in_flight; forwarding anyway");
            Ok(None)
        }
        Ok(Claim::Duplicate) => Err(Repeat::Duplicate),
        Ok(Claim::InFlight) => Err(Repeat::Refused(Reason::InFlight)),
        Err(e) => match on_store_error {
            OnStoreError::Reject => {
                tracing::warn!(route = %route.name, error = %e, "replay store failed: rejecting");
                Err(Repeat::Refused(Reason::ReplayStoreUnavailable))
            }
            OnStoreError::Allow => {
                tracing::warn!(route = %route.name, error = %e, "replay store failed: forwarding without the replay check (on_store_error = allow)");
                Ok(None)
            }
        },
    }
}

/// Records the application's answer in the replay store: delivered
/// (remembered) on 2xx, otherwise released for the provider's retry. `at`:
/// when the answer came, as the caller read the clock.
pub async fn settle(
    store: &Store,
    route: &Route,
    ticket: Ticket,
    accepted: bool,
    at: tokio::time::Instant,
) {
    let settled = if accepted {
        store.delivered(ticket, at).await
    } else {
        store.release(ticket).await
    };
    if let Err(e) = settled {
        tracing::warn!(route = %route.name, error = %e, "replay store could not record the outcome");
    }
}
