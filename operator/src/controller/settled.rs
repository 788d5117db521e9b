//! Watch events for controllers that read a reflector store.
//!
//! A reflector commits the objects of a list (`InitApply`) to its store only at `InitDone`. The
//! controller runner waits for the store's first readiness, but not on later re-lists (a watch
//! that expired with 410 Gone lists again): a trigger for an object new in such a list finds no
//! object in the store and is dropped, so that object would wait for its next change.

use futures::{Stream, StreamExt};
use kube::runtime::watcher::{self, Event};

/// Holds back the objects of an initial list until the list is complete, then yields them as
/// `Apply`; other events pass through. Place it after the reflector that feeds the store.
pub fn settled<K: Send + 'static>(
    events: impl Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
) -> impl Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static {
    let mut listed: Vec<K> = Vec::new();
    events.flat_map(move |event| {
        let out = match event {
            Ok(Event::Init) => {
                listed.clear();
                Vec::new()
            }
            Ok(Event::InitApply(object)) => {
                listed.push(object);
                Vec::new()
            }
            Ok(Event::InitDone) => listed.drain(..).map(|object| Ok(Event::Apply(object))).collect(),
            other => vec![other],
        };
        futures::stream::iter(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn listed_objects_come_after_the_list_is_complete() {
        let events = futures::stream::iter(vec![
            Ok(Event::Init),
            Ok(Event::InitApply("a")),
            Ok(Event::InitApply("b")),
            Ok(Event::InitDone),
            Ok(Event::Apply("c")),
            Ok(Event::Delete("a")),
            Ok(Event::Init),
            Ok(Event::InitApply("x")),
        ]);
        let seen: Vec<String> = settled(events)
            .map(|e| match e.unwrap() {
                Event::Apply(o) => format!("apply {o}"),
                Event::Delete(o) => format!("delete {o}"),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
            .await;
        // A re-list that never completes yields nothing of it.
        assert_eq!(seen, ["apply a", "apply b", "apply c", "delete a"]);
    }
}
