"""How the jobs of a parallel sweep (``launcher=parallel``: Hydra's joblib launcher) share the
machine: on N GPUs, at most N jobs at a time and job k on GPU k mod N; on the CPU, each job
gets its share of the cores."""

import logging
import os
from dataclasses import dataclass

import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from threadpoolctl import threadpool_limits

log = logging.getLogger(__name__)

CORES_PER_CPU_JOB = 4
"""On the CPU, a job's share is about this many cores (at least two jobs run at once)."""


def parallel_jobs(gpus: int | None = None, cores: int | None = None) -> int:
    """Jobs at a time: one per GPU when there are GPUs; on the CPU, one per
    ``CORES_PER_CPU_JOB`` cores, and at least 2."""
    gpus = torch.cuda.device_count() if gpus is None else gpus
    cores = (os.cpu_count() or 1) if cores is None else cores
    if gpus > 0:
        return gpus
    return max(2, cores // CORES_PER_CPU_JOB)


@dataclass(frozen=True)
class JobResources:
    """What one job of a parallel sweep may use: a GPU index (None on the CPU) and threads."""

    gpu: int | None
    threads: int


def job_resources(job_num: int, jobs_at_once: int, gpus: int, cores: int) -> JobResources:
    """Job ``job_num`` takes GPU ``job_num mod gpus``; its threads are the cores divided among
    the jobs that run at once."""
    threads = max(1, cores // max(1, min(jobs_at_once, cores)))
    return JobResources(job_num % gpus if gpus > 0 else None, threads)


def share_the_machine(cfg: DictConfig) -> JobResources | None:
    """In a job of a parallel sweep, limit its threads and pin it to its GPU (through
    ``trainer.devices``, when it asks for one device); elsewhere, do nothing."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    jobs_at_once = OmegaConf.select(hydra_cfg, "launcher.n_jobs")
    if jobs_at_once is None or hydra_cfg.mode is None or hydra_cfg.mode.name != "MULTIRUN":
        return None
    gpus, cores = torch.cuda.device_count(), os.cpu_count() or 1
    if jobs_at_once < 1:  # joblib's -1: as many as there are cores
        jobs_at_once = cores
    resources = job_resources(hydra_cfg.job.num, jobs_at_once, gpus, cores)
    torch.set_num_threads(resources.threads)
    threadpool_limits(resources.threads)  # numpy's BLAS and scikit-learn's OpenMP
    os.environ["OMP_NUM_THREADS"] = str(resources.threads)  # for libraries loaded later
    wants_one_gpu = cfg.trainer.get("accelerator") in ("gpu", "cuda", "auto") and cfg.trainer.get(
        "devices"
    ) in (1, "1")
    if resources.gpu is not None and wants_one_gpu:
        with open_dict(cfg):
            cfg.trainer.devices = [resources.gpu]
    log.info(
        "Parallel sweep job %d of %d at a time: %s, %d thread(s)",
        hydra_cfg.job.num,
        jobs_at_once,
        f"GPU {resources.gpu}" if resources.gpu is not None and wants_one_gpu else "CPU",
        resources.threads,
    )
    return resources
