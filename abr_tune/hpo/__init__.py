"""The hyperparameter search: the space, planning, the Ray Tune trial and tuner, the cluster, results, the report."""
