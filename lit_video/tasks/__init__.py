"""The LightningModules, one per task, on the shared `VideoTask` base (`base`); `optim` holds their
optimizer and learning-rate schedule."""
