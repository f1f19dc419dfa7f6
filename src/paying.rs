//! Withdrawals whose create-payout call is under way in this process, one call per withdrawal at
//! a time. A copy of the request (the same `Idempotency-Key`) that finds the withdrawal while its
//! first request is still waiting for the bank waits for that answer and gives it too: the row
//! alone cannot tell "the bank has not answered yet" from "the bank did not answer". And
//! reconciliation never asks the bank for a payout while the request is asking: the request
//! returns the money when the bank refuses, and a second call racing it could make the payout.

use dashmap::DashMap;
use onramp_store::domain::WithdrawalId;
use tokio::sync::watch;

/// How the bank answered a withdrawal's first create-payout call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered {
    /// The bank made the payout: `201`.
    Created,
    /// The bank refused it and the money is back: `502 bank_refused`.
    Refused,
    /// No answer: the withdrawal stays processing, `502 bank_unavailable`.
    Unanswered,
}

#[derive(Default)]
pub struct Paying {
    calls: DashMap<WithdrawalId, watch::Receiver<Option<Answered>>>,
}

/// One create-payout call under way. The request registers its call before the withdrawal is
/// committed, so that no copy can find the row without finding the call; dropping it (answered
/// or not) ends it.
pub struct Call<'a> {
    paying: &'a Paying,
    id: WithdrawalId,
    tx: watch::Sender<Option<Answered>>,
}

impl Paying {
    /// The call for `id`, unless one is under way already (reconciliation's, or the request's).
    pub fn start(&self, id: &WithdrawalId) -> Option<Call<'_>> {
        let dashmap::Entry::Vacant(slot) = self.calls.entry(id.clone()) else {
            return None;
        };
        let (tx, rx) = watch::channel(None);
        slot.insert(rx);
        Some(Call {
            paying: self,
            id: id.clone(),
            tx,
        })
    }

    /// The first call's answer, waiting for it while it is under way. `None` when no call is
    /// under way here, or it ended without an answer (its request was dropped): the row says
    /// the rest.
    pub async fn answer_of(&self, id: &WithdrawalId) -> Option<Answered> {
        let mut rx = self.calls.get(id).map(|r| r.value().clone())?;
        let answered = rx.wait_for(Option::is_some).await.ok()?;
        *answered
    }
}

impl Call<'_> {
    pub fn answered(self, answer: Answered) {
        self.tx.send_replace(Some(answer));
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        self.paying.calls.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_copy_waits_for_the_first_answer_and_a_dropped_call_answers_none() {
        let paying = Paying::default();
        let id = WithdrawalId::new();
        assert_eq!(paying.answer_of(&id).await, None, "nothing under way");

        let call = paying.start(&id).unwrap();
        assert!(paying.start(&id).is_none(), "one call at a time");
        let copy = paying.answer_of(&id);
        let first = async {
            tokio::task::yield_now().await;
            call.answered(Answered::Refused);
        };
        let (answer, ()) = tokio::join!(copy, first);
        assert_eq!(answer, Some(Answered::Refused));
        assert_eq!(
            paying.answer_of(&id).await,
            None,
            "ended calls are forgotten"
        );

        let call = paying.start(&id).unwrap();
        let copy = paying.answer_of(&id);
        let (answer, ()) = tokio::join!(copy, async move { drop(call) });
        assert!(paying.start(&id).is_some(), "free again");
        assert_eq!(answer, None, "a call dropped unanswered answers nothing");
    }
}
