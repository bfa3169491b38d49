"""Faust application: topics, agents, the state table, timers, web views and metrics."""
