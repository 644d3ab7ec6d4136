"""Prefect flows: one per DVC stage (each DVC stage's command runs one), plus `retrain`. Wiring only."""
