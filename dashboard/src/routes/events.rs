//! `GET /events`: Server-Sent Events, one `card` event (the rendered card) per change.

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{Stream, StreamExt};
use tokio_stream::wrappers::{BroadcastStream, WatchStream};

use crate::routes::pages::{CardPartial, CardView};
use crate::AppState;

pub async fn stream(State(state): State<AppState>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let updates = BroadcastStream::new(state.live.subscribe()).filter_map(|update| async move {
        // A browser that fell behind skips to the newest cards; it missed nothing that
        // a later card won't repeat.
        let card = update.ok()?;
        let html = CardPartial { c: CardView::new(&card, wire::now_ms()) }.render().ok()?;
        Some(Ok(Event::default().event("card").data(html)))
    });
    // Ends the stream when the server shuts down, so graceful shutdown isn't held open.
    let stopping = WatchStream::new(state.shutdown.clone()).filter(|stop| std::future::ready(*stop));
    let updates = updates.take_until(Box::pin(async move {
        let mut stopping = Box::pin(stopping);
        stopping.next().await;
    }));
    Sse::new(updates).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
