"""The machinery of a run: workers, pacing, retries, queues and signals."""
