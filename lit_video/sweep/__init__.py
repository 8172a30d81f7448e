"""Sweeps: specs (`spec`, `settings`), Optuna studies (`study`) run by workers (`worker`, `trial`),
launchers (`launch`), storages, W&B runs (`tracking`) and reports (`report`)."""
