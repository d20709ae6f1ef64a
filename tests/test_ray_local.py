"""The Ray a local search starts listens on 127.0.0.1 only: every service, not only the dashboard.

Checked over the listening sockets of the search's process tree (the driver and every process
Ray started under it), sampled while trials run.
"""

from __future__ import annotations

import importlib
import ipaddress
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, free_port, tiny_config

from abr_tune.hpo.cluster import SINGLE_NODE_ENV


def _psutil():
    import ray  # noqa: F401 - puts the psutil Ray ships with on sys.path

    return importlib.import_module("psutil")


def _is_loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%")[0])
    mapped = getattr(addr, "ipv4_mapped", None)  # gRPC reports 127.0.0.1 on an IPv6 socket as ::ffff:127.0.0.1
    return addr.is_loopback or (mapped is not None and mapped.is_loopback)


def _listeners(root_pid: int) -> set[tuple[str, str, int]]:
    """(process, address, port) of every listening TCP socket and bound UDP socket in root_pid's tree."""
    psutil = _psutil()
    try:
        root = psutil.Process(root_pid)
        pids = {root_pid} | {p.pid for p in root.children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()
    found = set()
    for conn in psutil.net_connections(kind="inet"):
        listening = conn.status == psutil.CONN_LISTEN if conn.type == 1 else not conn.raddr
        if conn.pid in pids and conn.laddr and listening:
            try:
                cmd = psutil.Process(conn.pid).cmdline()
            except psutil.NoSuchProcess:
                continue
            name = cmd[0] if cmd and cmd[0].startswith("ray::") else Path(cmd[0] if cmd else "?").name
            found.add((name.split(" ")[0], conn.laddr.ip, conn.laddr.port))
    return found


def _table(rows: set[tuple[str, str, int]]) -> str:
    return "\n".join(f"  {name:<28} {ip:<18} {port:<6} {'loopback' if _is_loopback(ip) else 'EXPOSED'}"
                     for name, ip, port in sorted(rows))


@pytest.mark.timeout(240)
def test_every_service_of_a_local_search_listens_on_loopback_only(tmp_path):
    base = tiny_config(tmp_path, data={"synthetic": {"n_subjects": 12, "recordings_per_subject": 4}},
                       viz={"num_samples": 2, "plot_spectrogram": False})
    base["trainer"].update(sample_every_epochs=100, log_every_steps=5)
    base["advanced"]["lr_warmup_steps"] = 0
    space = {"base": base, "num_samples": 2, "max_concurrent": 2, "scheduler": {"max_t": 4, "grace_period": 4},
             "params": {"optim.lr": {"dist": "loguniform", "low": 1e-4, "high": 5e-3}}}
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != SINGLE_NODE_ENV}
    log = (tmp_path / "search.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "abr_tune.search", "--space", str(tmp_path / "space.yaml"),
                             "--storage-path", str(tmp_path / "runs"), "--name", "net", "--dashboard-port", str(port)],
                            cwd=ROOT, env=dict(env, PYTHONPATH=str(ROOT)), stdout=log, stderr=subprocess.STDOUT)
    seen: set[tuple[str, str, int]] = set()
    try:
        while proc.poll() is None:
            seen |= _listeners(proc.pid)
            time.sleep(0.5)
    finally:
        proc.wait(timeout=120)
        log.close()
    assert proc.returncode == 0, (tmp_path / "search.log").read_text()[-3000:]
    print(f"\nlistening sockets of the search's processes ({len(seen)}):\n{_table(seen)}")
    names = {name for name, _, _ in seen}
    # the services that listened on every interface before: GCS, raylet, workers (trials), agents
    assert {"gcs_server", "raylet"} <= names and any(n.startswith("ray::") for n in names), names
    assert any(p == port for _, _, p in seen)  # the dashboard
    exposed = {row for row in seen if not _is_loopback(row[1])}
    assert not exposed, _table(exposed)


@pytest.mark.timeout(150)
def test_an_exposed_dashboard_is_the_only_service_off_loopback(node_ip_restored, capsys):
    import ray

    from abr_tune.hpo.cluster import start_ray
    from abr_tune.search import build_parser

    port = free_port()
    start_ray(build_parser().parse_args(["--dashboard-host", "0.0.0.0", "--dashboard-port", str(port)]), None)
    try:
        ray.get(ray.remote(lambda: 1).remote())  # a worker process, with its own gRPC server
        deadline, rows = time.monotonic() + 60, set()
        while time.monotonic() < deadline and not any(p == port for _, _, p in rows):
            rows = _listeners(os.getpid())
            time.sleep(0.5)
        time.sleep(3)  # the agents start after the dashboard
        rows = _listeners(os.getpid())
    finally:
        ray.shutdown()
    err = capsys.readouterr().err
    with capsys.disabled():
        print(f"\n--dashboard-host 0.0.0.0 ({len(rows)} listening):\n{_table(rows)}")
    exposed = {(ip, p) for _, ip, p in rows if not _is_loopback(ip)}
    assert exposed == {("0.0.0.0", port)}, _table(rows)
    assert any(n == "raylet" for n, _, _ in rows) and len(rows) >= 5
    assert "abr-tune: warning: the Ray dashboard listens on 0.0.0.0" in err


def test_rays_single_node_switch_is_still_read_at_import():
    """What confine_to_loopback relies on (checked against Ray 2.60.0): SINGLE_NODE_ENV=0 before `import ray`
    turns Ray's cluster mode off, and the private constant the in-process fallback writes still exists.
    When Ray changes either, this fails instead of a local search silently listening on every interface."""
    probe = "from ray._private import ray_constants as c; print(c.ENABLE_RAY_CLUSTER)"
    seen = {}
    for value in ("0", "1"):
        env = dict(os.environ, **{SINGLE_NODE_ENV: value})
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        seen[value] = done.stdout.strip()
    assert seen == {"0": "False", "1": "True"}
