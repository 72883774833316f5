//! Keys that changed, told by one task to another: a set, not a channel, so a producer
//! that reports the same key a million times while the consumer is busy holds one
//! entry (the fleet tells the controller which revisions' replicas changed).

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::Mutex;

use tokio::sync::Notify;

#[derive(Debug)]
pub struct Changed<K> {
    keys: Mutex<HashSet<K>>,
    notify: Notify,
}

impl<K> Default for Changed<K> {
    fn default() -> Self {
        Self {
            keys: Mutex::new(HashSet::new()),
            notify: Notify::new(),
        }
    }
}

impl<K: Eq + Hash> Changed<K> {
    pub fn tell(&self, key: K) {
        self.lock().insert(key);
        self.notify.notify_one();
    }

    /// Everything told since the last take, without waiting.
    pub fn take(&self) -> Vec<K> {
        self.lock().drain().collect()
    }

    /// Wait until something is told, then take it all.
    pub async fn wait(&self) -> Vec<K> {
        loop {
            let keys = self.take();
            if !keys.is_empty() {
                return keys;
            }
            self.notify.notified().await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<K>> {
        // A set is consistent after any panic: keep going.
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn repeated_changes_to_one_key_hold_one_entry() {
        let changed = Changed::default();
        for _ in 0..100_000 {
            changed.tell("hello-00001");
        }
        changed.tell("other-00001");
        let mut keys = changed.wait().await;
        keys.sort();
        assert_eq!(keys, ["hello-00001", "other-00001"]);
        assert!(changed.take().is_empty());
    }

    #[tokio::test]
    async fn a_waiter_wakes_when_told() {
        let changed = Arc::new(Changed::default());
        let waiter = tokio::spawn({
            let changed = changed.clone();
            async move { changed.wait().await }
        });
        tokio::task::yield_now().await;
        changed.tell(7);
        assert_eq!(waiter.await.unwrap(), [7]);
    }
}
