//! Per-item bookkeeping of multi-item requests: ids are parsed and de-duplicated
//! once, and failures come back in request order whatever step found them.

use std::collections::HashSet;

use super::ids::ConversationId;
use super::model::{ItemCode, ItemFailure, ItemOutcomes};

/// Why an item's value did not validate: its code and a message naming the
/// field and the limit.
pub type ItemError = (ItemCode, String);

/// One valid, first-seen item of a multi-item request.
#[derive(Debug, Clone)]
pub struct Item<T> {
    /// Position in the request, for ordering the failures.
    pub index: usize,
    /// The id exactly as sent (failures echo it).
    pub raw: String,
    pub id: ConversationId,
    pub value: T,
}

/// Accumulates the outcome of a multi-item request.
#[derive(Debug, Default, Clone)]
pub struct ItemResults {
    succeeded: Vec<ConversationId>,
    failures: Vec<(usize, ItemFailure)>,
}

impl ItemResults {
    /// Parses every raw id, rejecting malformed ones, duplicates (after
    /// normalisation: `c2c_x` duplicates `C2Cx`) and items whose value did not
    /// validate. Returns the items left to apply and the result so far.
    pub fn classify<T>(raw: Vec<(String, Result<T, ItemError>)>) -> (Vec<Item<T>>, Self) {
        let mut result = Self::default();
        let mut seen = HashSet::new();
        let mut items = Vec::with_capacity(raw.len());
        for (index, (raw_id, value)) in raw.into_iter().enumerate() {
            let id = match ConversationId::parse(&raw_id) {
                Ok(id) => id,
                Err(e) => {
                    let message = format!("conversation_ids[{index}]: {e}");
                    result.fail(index, raw_id, ItemCode::InvalidConversationId, message);
                    continue;
                }
            };
            if !seen.insert(id.clone()) {
                let message = format!("conversation_ids[{index}]: {id} appears earlier in the request");
                result.fail(index, raw_id, ItemCode::DuplicateInRequest, message);
                continue;
            }
            match value {
                Ok(value) => items.push(Item { index, raw: raw_id, id, value }),
                Err((code, message)) => result.fail(index, raw_id, code, message),
            }
        }
        (items, result)
    }

    /// [`classify`](Self::classify) for requests that carry ids only.
    pub fn classify_ids(raw: &[String]) -> (Vec<Item<()>>, Self) {
        Self::classify(raw.iter().map(|r| (r.clone(), Ok(()))).collect())
    }

    pub fn fail(&mut self, index: usize, raw: String, code: ItemCode, message: String) {
        self.failures.push((index, ItemFailure { raw_id: raw, code, message }));
    }

    pub fn fail_item<T>(&mut self, item: &Item<T>, code: ItemCode, message: String) {
        self.fail(item.index, item.raw.clone(), code, message);
    }

    pub fn succeed(&mut self, id: ConversationId) {
        self.succeeded.push(id);
    }

    pub fn succeeded(&self) -> &[ConversationId] {
        &self.succeeded
    }

    pub fn finish(mut self, revision: u64) -> ItemOutcomes {
        self.failures.sort_by_key(|(index, _)| *index);
        ItemOutcomes {
            succeeded: self.succeeded,
            failed: self.failures.into_iter().map(|(_, f)| f).collect(),
            revision,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_found_after_normalisation_and_failures_keep_request_order() {
        let raw: Vec<String> = ["C2Ca", "bad", "c2c_a", "GROUPg"].iter().map(|s| s.to_string()).collect();
        let (items, mut result) = ItemResults::classify_ids(&raw);
        assert_eq!(items.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["C2Ca", "GROUPg"]);
        result.fail_item(&items[0], ItemCode::AlreadyInGroup, "x".into());
        let outcome = result.finish(0);
        let codes: Vec<_> = outcome.failed.iter().map(|f| (f.raw_id.as_str(), f.code)).collect();
        assert_eq!(
            codes,
            [
                ("C2Ca", ItemCode::AlreadyInGroup),
                ("bad", ItemCode::InvalidConversationId),
                ("c2c_a", ItemCode::DuplicateInRequest)
            ]
        );
    }
}
