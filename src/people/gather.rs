//! Look-ups that missed the people caches, gathered into few queries. After a start every
//! person's first transfer misses (the sender by id, the recipient by email), and one query each
//! cost a round trip and a wake-up on both sides for a row PostgreSQL finds in microseconds.
//! Here, while [`IN_FLIGHT`] queries are out, the misses that arrive queue, and the next query
//! takes them all, as the writer's group commit does for writes. A miss alone is sent at once.

use onramp_store::{StoreError, User};
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// Queries out at once, per kind of look-up: more than one, so that a slow query does not hold
/// every look-up behind it; few, so that misses gather while they run.
const IN_FLIGHT: usize = 4;
/// Keys in one query, at most.
const MOST: usize = 512;
/// How long a query may take before its look-ups are answered with an error, so that queries
/// stuck on a database that does not answer do not hold every later look-up.
const LIMIT: Duration = Duration::from_secs(10);

/// What a look-up answers: the user, nobody, or the error of the query that looked.
pub type Found = Result<Option<Arc<User>>, Arc<StoreError>>;

/// One query for many keys: the users found, each under the key it was found by.
pub type Read<K> = Arc<
    dyn Fn(Vec<K>) -> Pin<Box<dyn Future<Output = Result<Vec<(K, User)>, StoreError>> + Send>>
        + Send
        + Sync,
>;

struct Miss<K> {
    key: K,
    reply: oneshot::Sender<Found>,
}

pub struct Gather<K> {
    misses: mpsc::UnboundedSender<Miss<K>>,
}

impl<K: Hash + Eq + Clone + Send + Sync + 'static> Gather<K> {
    /// The look-ups, and the task that reads them with `read`: the caller runs it on a runtime
    /// of its choice (it ends when the look-ups are dropped).
    pub fn new(read: Read<K>) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (misses, queued) = mpsc::unbounded_channel();
        (Gather { misses }, gather(queued, read))
    }

    /// The user found by `key`, read with the other misses queued meanwhile.
    pub async fn get(&self, key: K) -> Found {
        let (reply, answer) = oneshot::channel();
        if self.misses.send(Miss { key, reply }).is_err() {
            return Err(stopped());
        }
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}

/// The reads have stopped (the runtime is shutting down): as a closed pool would answer.
fn stopped() -> Arc<StoreError> {
    Arc::new(StoreError::Database(sqlx::Error::PoolClosed))
}

async fn gather<K: Hash + Eq + Clone + Send + Sync + 'static>(
    mut queued: mpsc::UnboundedReceiver<Miss<K>>,
    read: Read<K>,
) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = queued.recv().await {
        // While every slot is taken, misses queue behind `first`.
        let slot = slots.clone().acquire_owned().await.expect("never closed");
        let mut misses = vec![first];
        while misses.len() < MOST {
            match queued.try_recv() {
                Ok(miss) => misses.push(miss),
                Err(_) => break,
            }
        }
        // A look-up given up meanwhile (its request gone) is not read.
        misses.retain(|m| !m.reply.is_closed());
        let read = read.clone();
        tokio::spawn(async move {
            answer(misses, &read).await;
            drop(slot);
        });
    }
}

async fn answer<K: Hash + Eq + Clone>(misses: Vec<Miss<K>>, read: &Read<K>) {
    let mut waiting: HashMap<K, Vec<oneshot::Sender<Found>>> = HashMap::new();
    for miss in misses {
        waiting.entry(miss.key).or_default().push(miss.reply);
    }
    if waiting.is_empty() {
        return;
    }
    match query(read, waiting.keys().cloned().collect()).await {
        Ok(found) => {
            let found: HashMap<K, Arc<User>> =
                found.into_iter().map(|(k, u)| (k, Arc::new(u))).collect();
            for (key, replies) in waiting {
                reply(replies, Ok(found.get(&key).cloned()));
            }
        }
        // One key may be what failed the query (a row that does not read, a value the
        // database refuses): each is read alone, so that it fails only its own look-ups.
        Err(e) if waiting.len() > 1 && blames_a_key(&e) => {
            let alone = waiting.into_iter().map(|(key, replies)| async move {
                let found = query(read, vec![key]).await;
                let found = found.map(|f| f.into_iter().next().map(|(_, u)| Arc::new(u)));
                reply(replies, found.map_err(Arc::new));
            });
            futures_util::future::join_all(alone).await;
        }
        Err(e) => {
            let e = Arc::new(e);
            for replies in waiting.into_values() {
                reply(replies, Err(e.clone()));
            }
        }
    }
}

/// A look-up given up meanwhile (its request gone) takes no answer.
fn reply(replies: Vec<oneshot::Sender<Found>>, found: Found) {
    for r in replies {
        let _ = r.send(found.clone());
    }
}

/// Whether `e` may come from one of the query's keys rather than from the database being
/// unreachable or slow (then reading each key alone would only fail, or wait, once per key).
fn blames_a_key(e: &StoreError) -> bool {
    use sqlx::Error as E;
    match e {
        StoreError::Corrupt(_) => true,
        StoreError::Database(e) => matches!(
            e,
            E::Database(_) | E::Decode(_) | E::ColumnDecode { .. } | E::Encode(_)
        ),
        _ => false,
    }
}

/// `read` of `keys`, given at most [`LIMIT`].
async fn query<K>(read: &Read<K>, keys: Vec<K>) -> Result<Vec<(K, User)>, StoreError> {
    match tokio::time::timeout(LIMIT, read(keys)).await {
        Ok(found) => found,
        Err(_) => Err(StoreError::Database(sqlx::Error::PoolTimedOut)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onramp_store::domain::UserId;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    fn user(id: UserId) -> User {
        User {
            id,
            email: format!("{id}@x.test"),
            email_key: None,
            name: id.to_string(),
            picture: String::new(),
        }
    }

    fn started(read: Read<UserId>) -> Arc<Gather<UserId>> {
        let (gather, task) = Gather::new(read);
        tokio::spawn(task);
        Arc::new(gather)
    }

    /// What a reader saw: each query's keys, and the most queries running at once.
    #[derive(Default)]
    struct Seen {
        queries: Mutex<Vec<Vec<UserId>>>,
        running: AtomicUsize,
        most: AtomicUsize,
    }

    /// Answers every id but `absent`, after 20 ms, and fails any query holding `bad`.
    fn reader(absent: UserId, bad: UserId, seen: Arc<Seen>) -> Read<UserId> {
        Arc::new(move |ids: Vec<UserId>| {
            let seen = seen.clone();
            Box::pin(async move {
                seen.queries.lock().unwrap().push(ids.clone());
                let now = seen.running.fetch_add(1, Ordering::SeqCst) + 1;
                seen.most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                seen.running.fetch_sub(1, Ordering::SeqCst);
                if ids.contains(&bad) {
                    return Err(StoreError::Corrupt("a row that does not read".into()));
                }
                let found = ids.into_iter().filter(|id| *id != absent);
                Ok(found.map(|id| (id, user(id))).collect())
            })
        })
    }

    /// Look-ups arriving one every millisecond while queries take 20 ms: at most four queries
    /// run at once, the misses that arrive meanwhile share the next ones, and each look-up gets
    /// its own user, or nobody.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn misses_share_a_few_queries_and_each_gets_its_own_answer() {
        let (absent, seen) = (UserId::new(), Arc::new(Seen::default()));
        let gather = started(reader(absent, UserId::new(), seen.clone()));
        let mut ids: Vec<UserId> = (0..199).map(|_| UserId::new()).collect();
        ids.push(absent);
        ids.push(ids[0]); // the same person twice
        let mut lookups = Vec::new();
        for id in ids {
            let gather = gather.clone();
            lookups.push(tokio::spawn(async move { (id, gather.get(id).await) }));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for lookup in lookups {
            let (id, found) = lookup.await.unwrap();
            match found.unwrap() {
                Some(u) => assert_eq!(u.id, id),
                None => assert_eq!(id, absent),
            }
        }
        let queries = seen.queries.lock().unwrap().clone();
        assert!(seen.most.load(Ordering::SeqCst) <= IN_FLIGHT);
        assert!(
            queries.len() < 100,
            "{} queries for 200 people",
            queries.len()
        );
        let read: usize = queries.iter().map(Vec::len).sum();
        assert!(
            (200..=201).contains(&read),
            "{read} ids read for 200 people"
        );
    }

    /// A query that fails because of one key is read again a key at a time: that key's
    /// look-up fails, the others are answered.
    #[tokio::test]
    async fn one_bad_key_fails_only_its_own_look_up() {
        let (bad, seen) = (UserId::new(), Arc::new(Seen::default()));
        let gather = started(reader(UserId::new(), bad, seen.clone()));
        let good: Vec<UserId> = (0..3).map(|_| UserId::new()).collect();
        // Queued before the gathering task runs (one thread), so read together first.
        let together: Vec<_> = good
            .iter()
            .chain([&bad])
            .map(|id| {
                let (gather, id) = (gather.clone(), *id);
                tokio::spawn(async move { (id, gather.get(id).await) })
            })
            .collect();
        for lookup in together {
            let (id, found) = lookup.await.unwrap();
            if id == bad {
                assert!(found.is_err(), "the bad key fails");
            } else {
                assert_eq!(found.unwrap().unwrap().id, id);
            }
        }
        let sizes: Vec<usize> = seen.queries.lock().unwrap().iter().map(Vec::len).collect();
        assert_eq!(sizes, [4, 1, 1, 1, 1], "together, then each alone");
    }

    /// A database that cannot be reached fails the look-ups once, not once per key.
    #[tokio::test]
    async fn an_unreachable_database_fails_the_query_once() {
        let queries = Arc::new(AtomicUsize::new(0));
        let counted = queries.clone();
        let read: Read<UserId> = Arc::new(move |_ids: Vec<UserId>| {
            counted.fetch_add(1, Ordering::SeqCst);
            Box::pin(async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Err(StoreError::Database(sqlx::Error::PoolTimedOut))
            })
        });
        let gather = started(read);
        let lookups: Vec<_> = (0..IN_FLIGHT + 3)
            .map(|_| {
                let gather = gather.clone();
                tokio::spawn(async move { gather.get(UserId::new()).await })
            })
            .collect();
        for lookup in lookups {
            assert!(lookup.await.unwrap().is_err());
        }
        assert!(queries.load(Ordering::SeqCst) <= IN_FLIGHT + 1);
    }
}
