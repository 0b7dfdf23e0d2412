"""Fault injection on private Redis/PostgreSQL servers: nothing lost, nothing sent twice."""
