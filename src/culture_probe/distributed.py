"""Data parallelism with Ray: one backend replica per actor, the plan split between them.

This is the pattern lm-evaluation-harness uses for vLLM data parallelism: each Ray actor holds one
model (one GPU, or a tensor-parallel group of GPUs), and each batch of requests is cut into as many
contiguous shards as there are replicas and scored in parallel.

:class:`RayBackend` is itself a :class:`~culture_probe.backends.Backend`, so the runner treats it like
any other: it hands over a chunk, gets the results back in order, and writes the chunk file. Only the
driver writes to the run directory. That keeps the resume guarantee exactly as it is for one process
(a chunk is saved whole or not at all, numbered by one writer), and it works on a multi-node cluster
where the actors do not share the driver's disk. Actors returning results costs a little network
traffic (a few floats per prompt), nothing next to the model's work.

Example:
    >>> backend = RayBackend("hf", {"model": "embedded"}, address="local", replicas=2)  # doctest: +SKIP
    >>> score_plan(run, plan, backend)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from culture_probe.backends import Backend, BackendInfo, ScoredPrompt, ScoringRequest
from culture_probe.backends.base import ScoringStopped
from culture_probe.errors import CultureProbeError

INSTALL_HINT = "pip install 'culture-probe[ray]'"
#: how many requests each replica gets per chunk when the backend does not say
DEFAULT_SHARD_SIZE = 256


def import_ray() -> Any:
    """The ``ray`` module, or a clear error saying how to install it."""
    try:
        import ray
    except ImportError as error:
        raise CultureProbeError(
            f"--ray needs Ray: {INSTALL_HINT} (import failed: {error})"
        ) from error
    return ray


def connect(address: str, num_cpus: int | None = None) -> Any:
    """Join a Ray cluster: ``local`` starts one on this machine, ``auto`` finds a running one.

    Anything else is a cluster address (``ray://head:10001`` or ``head:6379``).
    """
    ray = import_ray()
    if ray.is_initialized():
        return ray
    if address == "local":
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=address, log_to_driver=False)
    return ray


def shard(requests: Sequence[ScoringRequest], n_shards: int) -> list[Sequence[ScoringRequest]]:
    """Contiguous, nearly equal slices (sizes differ by at most one; empty slices dropped).

    Example:
        >>> [len(part) for part in shard(list(range(7)), 3)]
        [3, 2, 2]
    """
    size, extra = divmod(len(requests), n_shards)
    parts, start = [], 0
    for index in range(n_shards):
        end = start + size + (1 if index < extra else 0)
        if end > start:
            parts.append(requests[start:end])
        start = end
    return parts


class BackendReplica:
    """What runs inside one Ray actor: a backend, built where the actor lives."""

    def __init__(self, backend_name: str, options: dict[str, Any]) -> None:
        from culture_probe.backends import create_backend

        if backend_name == "hf":
            from culture_probe.engine import tune_process

            tune_process()  # the actor's process only scores (see culture_probe.engine.process)
        self.backend = create_backend(backend_name, **options)

    def info(self) -> BackendInfo:
        return self.backend.info()

    def preferred_chunk_size(self) -> int:
        return self.backend.preferred_chunk_size

    def score(
        self, requests: Sequence[ScoringRequest]
    ) -> tuple[list[ScoredPrompt], dict[int, ScoredPrompt], str]:
        """Results, or (when the backend stops) the ones it finished and why it stopped.

        The partial results travel as a return value: an exception's extra fields do not survive
        Ray's error wrapping.
        """
        try:
            return self.backend.score(requests), {}, ""
        except ScoringStopped as stopped:
            return [], stopped.completed, str(stopped)

    def close(self) -> None:
        self.backend.close()


class RayBackend(Backend):
    """``replicas`` copies of a backend in Ray actors, scoring shards of each chunk in parallel."""

    def __init__(
        self,
        backend_name: str,
        options: dict[str, Any],
        address: str = "local",
        replicas: int = 1,
        gpus_per_replica: float | None = None,
        cpus_per_replica: float = 1.0,
    ) -> None:
        if replicas < 1:
            raise CultureProbeError(f"--replicas must be at least 1, got {replicas}")
        ray = connect(
            address, num_cpus=int(replicas * cpus_per_replica) if address == "local" else None
        )
        self.ray = ray
        self.address = address
        gpus = (
            gpus_per_replica if gpus_per_replica is not None else _gpus_for(backend_name, options)
        )
        actor_class = ray.remote(num_cpus=cpus_per_replica, num_gpus=gpus)(BackendReplica)
        self.replicas = [actor_class.remote(backend_name, options) for _ in range(replicas)]
        self._info: BackendInfo = ray.get(self.replicas[0].info.remote())
        shard_size = ray.get(self.replicas[0].preferred_chunk_size.remote()) or DEFAULT_SHARD_SIZE
        self.preferred_chunk_size = int(shard_size) * replicas

    def info(self) -> BackendInfo:
        # the replicas' own identity: a run keeps its key with or without Ray, so either can resume it
        info = self._info
        options = {**info.options, "ray": {"address": self.address, "replicas": len(self.replicas)}}
        return BackendInfo(
            info.backend, info.model, info.model_hash, info.dtype, info.mode, options
        )

    def score(self, requests: Sequence[ScoringRequest]) -> list[ScoredPrompt]:
        parts = shard(requests, len(self.replicas))
        pending = [
            replica.score.remote(list(part))
            for replica, part in zip(self.replicas, parts, strict=False)
        ]
        answers = self.ray.get(pending)
        results: list[ScoredPrompt] = []
        completed: dict[int, ScoredPrompt] = {}
        problems = []
        offset = 0
        for part, (scored, partial, problem) in zip(parts, answers, strict=True):
            if problem:
                problems.append(problem)
                completed.update({offset + index: result for index, result in partial.items()})
            else:
                completed.update({offset + index: result for index, result in enumerate(scored)})
                results.extend(scored)
            offset += len(part)
        if problems:
            raise ScoringStopped("; ".join(dict.fromkeys(problems)), completed)
        return results

    def close(self) -> None:
        for replica in self.replicas:
            self.ray.kill(replica)
        self.replicas = []


def _gpus_for(backend_name: str, options: dict[str, Any]) -> float:
    """GPUs one replica needs: vLLM's tensor x pipeline parallel size; none for the others."""
    if backend_name != "vllm":
        return 0.0
    return float(
        int(options.get("tensor_parallel_size", 1)) * int(options.get("pipeline_parallel_size", 1))
    )
