//! Unit tests of the group state machine.
