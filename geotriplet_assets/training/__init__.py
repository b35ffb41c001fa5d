"""Stage 4: the triplet projection head: training data, sampler, bandit, Lightning module,
trainer, Optuna search and tracking."""
