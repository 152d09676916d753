//! The Dexcom Share client: regions, the two-step publisher login, the readings endpoint,
//! the wire model and the typed errors.
//!
//! Dexcom Share is the unofficial API behind the Dexcom Follow app. A *publisher* (the person
//! wearing the sensor) logs in with username/e-mail/phone or account ID and password; the server
//! answers every application error with HTTP 500 and a JSON fault envelope. This module turns
//! all of that into [`ShareClient::latest_readings`] returning [`Reading`]s or a [`ShareError`]
//! with a stable [`ErrorReason`]. It knows nothing of Prometheus: the poller is the only place
//! where the client and the metrics meet.

mod client;
mod date;
mod error;
pub(crate) mod gate;
mod identity;
mod login;
mod model;
mod region;
mod transport;
mod trend;

pub use client::{ClientObserver, ClientSettings, Login, ReadBatch, ShareClient};
pub(crate) use client::{USER_AGENT, http_client};
pub(crate) use date::parse_share_date;
pub use error::{EdgeAnswer, ErrorReason, ShareError};
pub use gate::{LOCKOUT_WAIT, MAX_CONSECUTIVE_FAILURES, STRICT_WAIT, StoreFault, StoreFaultKind};
pub(crate) use identity::fnv1a;
pub use identity::{LoginIdentity, normalise_name};
pub(crate) use model::MG_PER_DL_PER_MMOL;
#[cfg(test)]
pub(crate) use model::parse_wire_readings;
pub use model::{Reading, ReadingError, RejectReason, Trend, WireBatch, mg_per_dl_to_mmol_per_l};
pub(crate) use region::NIL_UUID;
pub use region::{Endpoint, InvalidRegion, Region};
pub(crate) use transport::scrub_secret;

/// Largest `minutes` window the readings endpoint serves (24 hours).
pub const MAX_MINUTES: u32 = 1440;
/// Largest `maxCount` the readings endpoint serves (24 hours at the 5-minute cadence).
pub const MAX_COUNT: u32 = 288;
/// Largest `maxCount` asked for: a day of readings that each reached Share twice (an Apple
/// Watch uploading beside the phone). Share serves what it has; other clients ask as much.
pub const MAX_ROWS: u32 = 2 * MAX_COUNT;
