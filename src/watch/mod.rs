//! watch (to be filled in by its issue).
