use std::time::Duration;

use rumqttd::local::LinkTx;

use super::*;
use crate::router;

/// A link to publish on, with its notifications drained.
async fn publisher(router: &Router) -> LinkTx {
    let (tx, rx) = router.link("publisher").await.unwrap();
    router::drain(rx);
    tx
}

fn publish(tx: &mut LinkTx, topic: &str, count: usize) {
    for i in 0..count {
        tx.publish(topic.to_owned(), i.to_string()).unwrap();
    }
}

/// Takes rounds until `count` messages arrived; the last round stays unacked.
async fn collect(subscription: &mut Subscription, count: usize) -> Vec<Message> {
    let mut messages = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while messages.len() < count {
            messages.extend_from_slice(subscription.next_round().await.unwrap());
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {} of {count} messages arrived", messages.len()));
    messages
}

fn assert_in_order(messages: &[Message], topic: &str, count: usize) {
    assert_eq!(messages.len(), count);
    for (i, message) in messages.iter().enumerate() {
        assert_eq!(&message.topic[..], topic.as_bytes());
        assert_eq!(&message.payload[..], i.to_string().as_bytes(), "message {i}");
    }
}

#[tokio::test]
async fn messages_published_through_a_link_arrive_in_order() {
    let router = Router::start(8);
    let mut subscription = router.subscribe("test", "t/#", Pacing::Unpaced).await.unwrap();
    let mut tx = publisher(&router).await;
    publish(&mut tx, "t/a", 10);
    publish(&mut tx, "other/a", 1);
    let messages = collect(&mut subscription, 10).await;
    assert_in_order(&messages, "t/a", 10);
}

#[tokio::test]
async fn thousands_of_queued_messages_all_arrive() {
    let router = Router::start(8);
    let mut subscription = router.subscribe("test", "t/#", Pacing::Unpaced).await.unwrap();
    let mut tx = publisher(&router).await;
    publish(&mut tx, "t/a", 5_000);
    let messages = collect(&mut subscription, 5_000).await;
    assert_in_order(&messages, "t/a", 5_000);
}

/// At QoS 1 the router holds a link to 100 unacked messages, so its queue stays short of
/// the 200 at which it unschedules; at QoS 0 it fills the queue and sends `Unschedule`,
/// after which it forwards nothing more until the link wakes it.
#[tokio::test]
async fn a_link_the_router_unscheduled_is_woken_and_gets_everything() {
    let router = Router::start(8);
    let mut subscription = Subscription::open(&router, "test", "t/#", QoS::AtMostOnce, Pacing::Unpaced).await.unwrap();
    let mut tx = publisher(&router).await;
    publish(&mut tx, "t/a", 5_000);
    let messages = collect(&mut subscription, 5_000).await;
    assert_in_order(&messages, "t/a", 5_000);
}

#[tokio::test]
async fn the_router_holds_back_what_follows_unacked_messages_until_the_ack() {
    let router = Router::start(8);
    let mut subscription = router.subscribe("test", "t/#", Pacing::Unpaced).await.unwrap();
    let mut tx = publisher(&router).await;
    publish(&mut tx, "t/a", 150);
    let filled = tokio::time::timeout(Duration::from_secs(10), async {
        while subscription.round.len() < 100 {
            subscription.fill().await.unwrap();
        }
    });
    filled.await.expect("the first 100 arrive without an ack");
    let more = tokio::time::timeout(Duration::from_millis(300), subscription.fill()).await;
    assert!(more.is_err(), "rumqttd keeps at most 100 QoS 1 messages in flight per link");
    let first = subscription.round.clone();
    assert_eq!(first.len(), 100);
    // Asking for the next round acks the first.
    let rest = collect(&mut subscription, 50).await;
    assert_in_order(&[first, rest].concat(), "t/a", 150);
}

#[tokio::test]
async fn only_the_backlog_owner_counts_what_it_takes() {
    let router = Router::start(8);
    let mut owner = router.subscribe("owner", "t/#", Pacing::OwnsBacklog).await.unwrap();
    let mut other = router.subscribe("other", "t/#", Pacing::Unpaced).await.unwrap();
    let mut tx = publisher(&router).await;
    let count = 1_000;
    // What the gateway counts for each publish it hands to the router.
    for i in 0..count {
        router.backlog().add("t/a".len() + i.to_string().len());
    }
    publish(&mut tx, "t/a", count);
    let queued = router.backlog().bytes();
    assert!(queued > 0);

    assert_in_order(&collect(&mut other, count).await, "t/a", count);
    assert_eq!(router.backlog().bytes(), queued, "an unpaced subscriber leaves the backlog alone");
    assert_in_order(&collect(&mut owner, count).await, "t/a", count);
    assert_eq!(router.backlog().bytes(), 0);
}

#[tokio::test]
async fn a_second_backlog_owner_is_refused() {
    let router = Router::start(8);
    let _owner = router.subscribe("owner", "t/#", Pacing::OwnsBacklog).await.unwrap();
    let second = router.subscribe("second", "t/#", Pacing::OwnsBacklog).await;
    assert!(matches!(second, Err(SubscribeError::BacklogTaken { .. })));
}
