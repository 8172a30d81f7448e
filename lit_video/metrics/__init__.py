"""Metrics that reproduce the official evaluators (DAVIS J&F; video AP and caption scores to come)."""
