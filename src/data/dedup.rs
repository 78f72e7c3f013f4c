//! `prep dedup`: the first occurrence wins. Duplicates are found by id and by content, the pair
//! (first user turn, first assistant turn): the ShareGPT dumps hold the same conversation shared
//! twice under two ids. FastChat keys content on (first answer, turn count), which misses the
//! same chat continued further and merges different questions that got the same canned answer.
use super::conversation::{Conversation, Role};
use super::report::Reason;
use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

/// What has been seen so far: ids, and 64-bit hashes of content keys (collisions are negligible
/// at dump sizes: about 1e-8 for a million conversations).
#[derive(Default)]
pub struct Dedup {
    ids: HashSet<String>,
    contents: HashSet<u64>,
}

impl Dedup {
    /// Records `conversation` and says whether an earlier one duplicates it.
    pub fn check(&mut self, conversation: &Conversation) -> Option<Reason> {
        if self.ids.contains(&conversation.id) {
            return Some(Reason::DuplicateId);
        }
        if !self.contents.insert(content_key(conversation)) {
            return Some(Reason::DuplicateContent);
        }
        self.ids.insert(conversation.id.clone());
        None
    }
}

fn content_key(conversation: &Conversation) -> u64 {
    let mut h = DefaultHasher::new();
    conversation.first(Role::User).unwrap_or("").trim().hash(&mut h);
    conversation.first(Role::Assistant).unwrap_or("").trim().hash(&mut h);
    h.finish()
}
