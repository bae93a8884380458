"""What each command does with a task: revoke, cut, rotate, prune, show, streams."""
