"""The audit log: writing, reading, chaining and merging it."""
