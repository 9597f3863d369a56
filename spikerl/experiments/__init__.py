"""Running experiments: typed configs, training runs, evaluation, sweeps and reports.

The entry points, each in its module (imported on use, so ``import spikerl.experiments`` stays
cheap): :func:`~spikerl.experiments.config.load_config` (a YAML preset plus ``key=value``
overrides, validated), :func:`~spikerl.experiments.run.train` (one run folder: metrics,
atomic checkpoints, exact resume), :func:`~spikerl.experiments.seeds_run.train_seeds` (many
seeds in one process), :func:`~spikerl.experiments.policy.load_policy`,
:class:`~spikerl.experiments.policy.EnvPolicy` (a trained policy acting on the env's own
observations and actions) and :func:`~spikerl.experiments.policy.evaluate_run`,
:mod:`~spikerl.experiments.sweep` (grids of runs, locally or on Ray) and
:mod:`~spikerl.experiments.report` (tables and plots of finished runs).
"""
