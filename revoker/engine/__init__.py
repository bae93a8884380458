"""Inputs to plan to tasks to requests: everything a run does, without click or rendering."""
