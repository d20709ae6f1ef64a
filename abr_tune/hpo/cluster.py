"""Reaching Ray: a local cluster with its dashboard, or an existing one (fail fast when unreachable)."""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
import tempfile
from pathlib import Path
from typing import Optional

from ..errors import UserError
from .space import SearchSpace

ADDRESS_TIMEOUT_S = 3.0
SINGLE_NODE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # Ray's switch for its single-node, loopback-only mode


def check_local_resources(space: SearchSpace) -> None:
    """Before starting a local Ray: a trial must fit on this machine."""
    r = space.resources
    cpus = os.cpu_count() or 1
    if r.cpus_per_trial > cpus:
        raise UserError(f"--cpus-per-trial {r.cpus_per_trial:g} exceeds this machine's {cpus} CPUs")
    if r.gpus_per_trial > 0:
        import torch

        if r.gpus_per_trial > torch.cuda.device_count():
            raise UserError(f"--gpus-per-trial {r.gpus_per_trial:g} but this machine has "
                            f"{torch.cuda.device_count()} GPUs; use 0 (CPU) or run on a GPU machine or cluster")


def check_dashboard(host: str, port: Optional[int]) -> None:
    """Before starting a local Ray: the dashboard host is this machine's and an explicit port is free
    (ray.init fails with a traceback otherwise; without a port Ray takes 8265 or the next free one)."""
    if port is not None and not 1 <= port <= 65535:
        raise UserError(f"--dashboard-port must be between 1 and 65535, got {port}")
    try:
        family = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Ray's own check does
            s.bind((host, port or 0))
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise UserError(f"--dashboard-port {port} is already in use on {host} (another search or Ray?); "
                            "pick another port, or leave --dashboard-port out to take the next free one") from None
        raise UserError(f"--dashboard-host {host!r} is not an address of this machine ({err.strerror or err}); "
                        "use 127.0.0.1 (the default) or 0.0.0.0") from None


def check_address(address: Optional[str]) -> Optional[str]:
    """Fail fast (bounded time) when --address names a cluster that cannot be reached."""
    if address is None:
        return None
    target = _discover_auto() if address == "auto" else address
    host_port = target.split("://", 1)[-1]
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--address {address!r} must be auto, host:port or ray://host:port")
    problem = _tcp_problem(host, int(port)) or (None if "://" in target else _gcs_problem(host_port))
    if problem:
        raise UserError(f"cannot reach the Ray cluster at {host_port} ({problem}); start it with "
                        "`ray start --head` or fix --address")
    return address


def _tcp_problem(host: str, port: int) -> Optional[str]:
    try:
        with socket.create_connection((host, port), timeout=ADDRESS_TIMEOUT_S):
            return None
    except OSError as err:
        return err.strerror or str(err) or type(err).__name__


def _gcs_problem(host_port: str) -> Optional[str]:
    """Ask the GCS the standard gRPC health check: something else listening is not a cluster."""
    import grpc

    with grpc.insecure_channel(host_port) as channel:
        try:
            channel.unary_unary("/grpc.health.v1.Health/Check")(b"", timeout=ADDRESS_TIMEOUT_S)
        except grpc.RpcError as err:
            if err.code() not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                return f"no Ray GCS answers there: {err.code().name}"
    return None


def _discover_auto() -> str:
    """Where `--address auto` points: $RAY_ADDRESS or the head started on this machine."""
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    current = Path("/tmp/ray/ray_current_cluster")
    if current.is_file() and current.read_text().strip():
        return current.read_text().strip()
    raise UserError("--address auto found no running Ray cluster on this machine; start one with "
                    "`ray start --head`, or leave out --address to start a local one")


def check_ray_home() -> None:
    """Before starting a local Ray: Ray 2.60 creates its token file ~/.ray/auth_token on first
    start, and a HOME it cannot write to fails deep inside ray.init."""
    given = any(os.environ.get(k) for k in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"))
    token = Path.home() / ".ray" / "auth_token"
    if given or os.environ.get("RAY_AUTH_MODE", "token").lower() != "token" or token.is_file():
        return
    try:
        token.parent.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=token.parent).close()
    except OSError as err:
        raise UserError(f"Ray must create its token file {token} but cannot write to {token.parent} "
                        f"({err.strerror or err}); set HOME to a writable directory or fix its permissions") from None


def confine_to_loopback() -> None:
    """Every service of the local Ray on 127.0.0.1, not only the dashboard.

    Ray binds its GCS, raylet, workers, agents and metrics endpoints to all interfaces or the
    node's routable IP unless the node IP is loopback, and turns a requested 127.0.0.1 back into
    the routable IP; only its single-node mode (the environment variable SINGLE_NODE_ENV = 0, read
    when ray is imported) keeps 127.0.0.1. `python -m abr_tune.search` sets the variable before it
    imports ray, and Ray's processes inherit it; an explicit value is kept.
    """
    os.environ.setdefault(SINGLE_NODE_ENV, "0")
    if os.environ[SINGLE_NODE_ENV] == "0":
        _single_node_after_import()


def _single_node_after_import() -> None:
    """The one use of Ray's private state: a caller that imported ray before the variable was set (a
    notebook, the tests) gets the single-node mode the import would have given. Ray offers no public
    switch after import. Checked against Ray 2.60.0; tests/test_ray_local.py fails if the constant or
    the variable's meaning changes. No write when the import already read the variable."""
    import sys

    if "ray" not in sys.modules:
        return  # ray's import will read the variable
    from ray._private import ray_constants

    if getattr(ray_constants, "ENABLE_RAY_CLUSTER", False):
        ray_constants.ENABLE_RAY_CLUSTER = False  # read by services.get_node_ip_address() at ray.init


def start_ray(args: argparse.Namespace, address: Optional[str]) -> None:
    import ray

    if address is None:
        if args.dashboard_host not in ("127.0.0.1", "localhost"):
            print(f"abr-tune: warning: the Ray dashboard listens on {args.dashboard_host}; "
                  "anyone who can reach its port can run code on this machine", file=sys.stderr)
        confine_to_loopback()
        ctx = ray.init(include_dashboard=True, dashboard_host=args.dashboard_host,
                       dashboard_port=args.dashboard_port)
    else:
        try:
            ctx = ray.init(address=address)
        except (ConnectionError, RuntimeError) as err:
            raise UserError(f"cannot connect to the Ray cluster at {address}: {err}") from None
    url = ctx.dashboard_url
    if url:
        print(f"Ray dashboard: http://{url}  (token auth: the page asks for the token that "
              "`ray get-auth-token` prints, also in ~/.ray/auth_token; API clients send "
              "'Authorization: Bearer <token>')", flush=True)
    else:
        print("Ray dashboard: not running (install ray[default] to get it)", flush=True)


def check_resources(space: SearchSpace) -> None:
    """Refuse a search whose trials could never be scheduled on this cluster."""
    import ray

    have = ray.cluster_resources()
    r = space.resources
    for key, need in (("CPU", r.cpus_per_trial), ("GPU", r.gpus_per_trial)):
        if need > have.get(key, 0):
            raise UserError(f"each trial asks for {need:g} {key} but the Ray cluster has {have.get(key, 0):g}; "
                            f"lower --{key.lower()}s-per-trial")


def stop_on_sigterm() -> None:
    """SIGTERM (a scheduler's or `kill`'s stop) stops the search as Ctrl-C does: Tune saves its state and
    the trials that finished, the study stays resumable, and the exit says how to continue.

    Without this, Ray's driver handler took SIGTERM: a C++ stack dump and exit -6, no word on resuming.
    Installed after `ray.init`, which installs that handler.
    """
    import signal

    signal.signal(signal.SIGTERM, lambda signum, frame: signal.raise_signal(signal.SIGINT))
