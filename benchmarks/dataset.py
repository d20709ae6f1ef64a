"""Figure 4: synthetic data for 50,000 recordings, and getting a dataset into a trial.

simulate() at train.yaml's size (2,000 subjects × 25 recordings) must take <= 10 s. A search
loads (or simulates) the dataset once in the driver and hands it to every trial through the
Ray object store (`tune.with_parameters`); here a Ray task's ray.get of the ABRArrays is
timed against the same task regenerating them, and the search's driver-side load
(`abr_tune.hpo.tuner.load_data`) is checked to return the dataset for a search that does not
tune data.* keys.
"""

from __future__ import annotations

import time

from abr_tune.data import simulate

from .common import Figure, at_most, median, reported, timed

SECTION = "4 data"
N_SUBJECTS, PER_SUBJECT = 2000, 25  # train.yaml: 50,000 recordings


def measure(opts) -> list[Figure]:
    sizes = (400, 25) if opts.quick else (N_SUBJECTS, PER_SUBJECT)
    times = [timed(lambda: simulate(*sizes, seed=1234)) for _ in range(3)]
    figures = [at_most(SECTION, f"simulate() {sizes[0] * sizes[1]:,} recordings", median(times), 10.0, "s",
                       runs=times, recordings=sizes[0] * sizes[1])]
    return figures + _transfer(sizes)


def _transfer(sizes: tuple[int, int]) -> list[Figure]:
    import ray

    from abr_tune.hpo import tuner as search
    from abr_tune.hpo.space_file import load_space

    from .common import ROOT

    arrays = simulate(*sizes, seed=1234)
    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray_start = time.perf_counter() - started
    try:
        put_s = timed(lambda: ray.put(arrays))
        ref = ray.put(arrays)

        @ray.remote(num_cpus=1)
        def fetch(refs):
            t0 = time.perf_counter()
            got = ray.get(refs[0])  # what a trial does with tune.with_parameters' object
            return time.perf_counter() - t0, int(got.signals.shape[0])

        @ray.remote(num_cpus=1)
        def regenerate(n_subjects, per_subject):
            t0 = time.perf_counter()
            got = simulate(n_subjects, per_subject, seed=1234)
            return time.perf_counter() - t0, int(got.signals.shape[0])

        ray.get(fetch.remote([ref]))  # warm the worker
        fetched = [ray.get(fetch.remote([ref])) for _ in range(3)]
        regenerated = [ray.get(regenerate.remote(*sizes)) for _ in range(2)]
    finally:
        ray.shutdown()
    space = load_space(ROOT / "search_spaces" / "lr_stft.yaml")
    once = search.load_data(space) is not None  # the driver's single load, handed to every trial
    get_s, regen_s = median([f[0] for f in fetched]), median([r[0] for r in regenerated])
    nbytes = arrays.signals.nbytes + arrays.static.nbytes
    return [
        reported(SECTION, "trial gets the dataset: ray.get in a worker", get_s, "s", ray_put_s=put_s,
                 regenerate_in_worker_s=regen_s, speedup_vs_regenerate=regen_s / get_s, megabytes=nbytes / 2**20,
                 ray_init_s=ray_start),
        Figure(SECTION, "search loads the dataset once (no per-trial regeneration)", 1.0 if once else 0.0, "",
               "loaded once", once, {"space": "search_spaces/lr_stft.yaml"}),
    ]
