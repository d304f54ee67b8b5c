//! Stable names for the objects coroutines wait on: `Mutex#3`, `channel#7`, or a label the
//! program chose (`accounts#3`), in place of memory addresses, which change from run to run.

use std::cell::Cell;
use std::fmt;

use crate::context;
use crate::wake::{Reason, Subject};

/// The name of a waitable object in park reasons, deadlock reports and traces: its kind (or a
/// label) and a small number.
///
/// The number is given the first time a coroutine waits on the object, from a counter of the
/// runtime it waits in (1, 2, 3, ...), so it costs nothing for objects nobody waits on, and it
/// is the same in every run of a seeded program under virtual time (the same waits happen in
/// the same order). An object that outlives its runtime and is waited on in another one gets a
/// new number there.
///
/// Every lock and channel of [`crate::sync`] has one; a primitive of your own can embed one and
/// park with [`ObjectId::reason`]:
///
/// ```
/// use spindle_runtime::park::{self, ObjectId, Reason};
///
/// spindle_runtime::run(|| {
///     let door = ObjectId::new("Door");
///     let other = ObjectId::new("Door");
///     other.label("back door");
///     assert_eq!(door.reason("Door::wait").to_string(), "Door::wait (Door#1)");
///     assert_eq!(other.reason("Door::wait").to_string(), "Door::wait (back door#2)");
///     assert_eq!(door.reason("Door::wait").to_string(), "Door::wait (Door#1)");
///     # let _ = park::park(door.reason("Door::wait"), Some(spindle_runtime::time::now()), |_| {});
/// });
/// ```
pub struct ObjectId {
    /// 0 until first named; then the low 32 bits of the naming runtime's id, shifted up, and
    /// the number in the low 32 bits.
    slot: Cell<u64>,
    /// The kind, or the label.
    name: Cell<&'static str>,
}

impl ObjectId {
    /// An object of kind `kind` (`"Mutex"`), not numbered yet.
    pub const fn new(kind: &'static str) -> ObjectId {
        ObjectId { slot: Cell::new(0), name: Cell::new(kind) }
    }

    /// Names the object `label` instead of its kind: reasons then say `label#3`.
    pub fn label(&self, label: &'static str) {
        self.name.set(label);
    }

    /// The kind or label.
    pub fn name(&self) -> &'static str {
        self.name.get()
    }

    /// The object's number in the runtime running on this thread, given now if it has none
    /// there yet; 0 outside a runtime.
    pub fn number(&self) -> u32 {
        context::with_core(|core| core.object_number(&self.slot)).unwrap_or(0)
    }

    /// A park reason naming this object: `Reason { what, on: Some(Subject::Object { .. }) }`.
    pub fn reason(&self, what: &'static str) -> Reason {
        self.reason_numbered(what, self.number())
    }

    /// `reason(what)` for a caller that has the number already.
    pub(crate) fn reason_numbered(&self, what: &'static str, id: u32) -> Reason {
        Reason { what, on: Some(Subject::Object { name: self.name(), id }) }
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.slot.get() as u32 {
            0 => write!(f, "{}#?", self.name()),
            n => write!(f, "{}#{n}", self.name()),
        }
    }
}
