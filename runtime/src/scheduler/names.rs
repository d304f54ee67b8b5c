//! The runtime's side of object names ([`crate::park::ObjectId`]): the counter that numbers
//! objects as they are first waited on, and the holders of the locks coroutines wait for, so
//! that a deadlock report can say `Mutex#3 held by #5 'transfer'`.

use std::cell::{Cell, RefCell};

use super::Core;

#[derive(Default)]
pub(crate) struct Names {
    /// The last number given; objects are numbered from 1.
    last: Cell<u32>,
    /// (object number, holder's coroutine id) of locks that a coroutine parked waiting for
    /// and that are still held; kept by the lock (`set_holder`, `clear_holder`).
    holders: RefCell<Vec<(u32, u64)>>,
}

impl Core {
    /// The number of the object whose `ObjectId` slot is `slot` in this runtime, given now if
    /// it has none here (see `ObjectId`'s encoding).
    pub(crate) fn object_number(&self, slot: &Cell<u64>) -> u32 {
        let tag = (self.runtime_id as u32 as u64) << 32;
        let value = slot.get();
        if value != 0 && value & !0xffff_ffff == tag {
            return value as u32;
        }
        // Saturates: past 4 billion objects the last number is shared (a name, not a key).
        let n = self.names.last.get().saturating_add(1);
        self.names.last.set(n);
        slot.set(tag | n as u64);
        n
    }

    /// Records that coroutine `holder` holds lock number `object`, which a coroutine waits for.
    #[inline]
    pub(crate) fn set_holder(&self, object: u32, holder: u64) {
        let mut holders = self.names.holders.borrow_mut();
        // Usually one lock is contended at a time.
        if let Some(entry) = holders.first_mut().filter(|(o, _)| *o == object) {
            entry.1 = holder;
            return;
        }
        match holders.iter_mut().find(|(o, _)| *o == object) {
            Some(entry) => entry.1 = holder,
            None => holders.push((object, holder)),
        }
    }

    /// Lock number `object` was released with nobody waiting.
    pub(crate) fn clear_holder(&self, object: u32) {
        self.names.holders.borrow_mut().retain(|(o, _)| *o != object);
    }

    /// The coroutine holding lock number `object`, if a waiter recorded it.
    pub(crate) fn holder(&self, object: u32) -> Option<u64> {
        self.names.holders.borrow().iter().find(|(o, _)| *o == object).map(|&(_, h)| h)
    }
}
