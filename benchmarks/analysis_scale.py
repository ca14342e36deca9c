"""Analysis at scale: 1,000,000 responses (100 items x 50 proxies x 10 paraphrases x 4 orders x
5 seeds) with 2,000 bootstrap resamples. Prints the time and the peak resident memory.

Run: python benchmarks/analysis_scale.py [--bootstrap 2000] [--permutations 999]
Target: under 60 s and 4 GB peak on a 2-core machine.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time

from culture_probe.analysis import analyze, tidy_responses
from culture_probe.analysis.synthetic import PlantedEffects, simulate_study


def peak_rss_gib() -> float:
    """Peak resident set size of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--permutations", type=int, default=999)
    args = parser.parse_args()
    effects = PlantedEffects(
        culture=0.1, wording=0.05, interaction=0.03, noise=0.05, position_bias=0.05
    )
    start = time.perf_counter()
    plan, responses = simulate_study(
        effects,
        n_items=100,
        n_proxies=50,
        n_paraphrases=10,
        n_orders=4,
        n_seeds=5,
        n_options=5,
        seed=0,
    )
    built = time.perf_counter()
    print(
        f"synthetic study: {len(responses):,} responses in {built - start:.1f} s; "
        f"peak RSS so far {peak_rss_gib():.2f} GiB"
    )
    tidy = tidy_responses(plan, responses)
    del plan, responses
    joined = time.perf_counter()
    result = analyze(tidy, n_bootstrap=args.bootstrap, n_permutations=args.permutations)
    done = time.perf_counter()
    print(f"tidy_responses: {joined - built:.1f} s")
    print(
        f"analyze (bootstrap {args.bootstrap}, permutations {args.permutations}): "
        f"{done - joined:.1f} s"
    )
    print(f"tidy + analyze: {done - built:.1f} s")
    print(f"peak RSS: {peak_rss_gib():.2f} GiB")
    print(f"python {sys.version.split()[0]} on {platform.machine()}, {platform.processor() or ''}")
    print("\n".join(result.headline))


if __name__ == "__main__":
    main()
