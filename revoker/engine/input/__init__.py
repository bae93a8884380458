"""The input side: key sources, scanner reports and the plan of tasks."""
