"""Sweeps: compute profiles, Optuna studies, reports."""
