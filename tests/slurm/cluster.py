"""A real one-node SLURM cluster on this machine, for the SLURM executor's tests: munged, slurmctld and
slurmd from Debian's slurm-wlm, each started here in the foreground (so its pid is ours to stop), with
every file they write (config, munge key and socket, state, spool, logs) in one temporary folder.

    python -m tests.slurm.cluster -- python -m bench run --executor slurm ...   # runs one command on it

Needs root (slurmd starts jobs as their user) and the binaries; `unavailable()` says why not otherwise.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scontrol", "scancel", "sinfo", "srun")
START_TIMEOUT_S = 60


def unavailable() -> str | None:
    """Why this machine cannot host the test cluster, or None when it can."""
    missing = [b for b in (*DAEMONS, *CLIENTS) if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]
    if missing:
        return f"no SLURM here: {', '.join(missing)} not found (apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "the local SLURM cluster needs root (slurmd runs jobs as their user)"
    return None


def _binary(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _free_port() -> int:
    with socket.socket() as s:  # the kernel's choice: no clash with anything listening now
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _node(host: str) -> tuple[str, int, int]:
    """This machine as a SLURM node reachable on 127.0.0.1 (slurmd -C measures it), its CPUs and memory (MB)."""
    out = subprocess.run([_binary("slurmd"), "-C"], capture_output=True, text=True, check=True).stdout
    found = re.search(r"^NodeName=\S+ (.*CPUs=(\d+).*)RealMemory=(\d+)", out, re.M)
    if not found:
        raise RuntimeError(f"slurmd -C gave no node line: {out!r}")
    memory = int(found.group(3)) * 95 // 100  # a node with less memory than configured is drained
    line = f"NodeName={host} NodeAddr=127.0.0.1 {found.group(1)}RealMemory={memory} State=UNKNOWN"
    return line, int(found.group(2)), memory


def slurm_conf(folder: Path, host: str, node: str, cpus: int, memory_mb: int) -> str:
    """The cluster's slurm.conf: one node, one default partition, no accounting database."""
    return f"""\
ClusterName=benchtest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={folder}/munge/munge.socket
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/log/slurmctld.log
SlurmdLogFile={folder}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups: linuxproc finds a job's processes by their parents (a worker in its own session included)
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU={memory_mb // cpus}
# No slurmdbd: sacct cannot answer (the executor reads squeue); job completions go to a text file.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={folder}/log/jobcomp.txt
# GPU-less node on a cluster that knows GPUs: a gres=gpu request is refused, as on a CPU partition
GresTypes=gpu
MpiDefault=none
ReturnToService=2
KillWait=5
MinJobAge=30
InactiveLimit=0
Waittime=0
SchedulerType=sched/backfill
{node}
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
# A job asking more time than this partition allows is accepted (EnforcePartLimits=NO, the default) and
# waits forever with reason PartitionTimeLimit: the executor's "can never start" case
PartitionName=short Nodes={host} MaxTime=1 State=UP
"""


class LocalCluster:
    """Start with start(), stop with stop() (or use as a context manager); env holds SLURM_CONF."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="bench-slurm-"))
        self.host = socket.gethostname().split(".")[0]
        self.env = {"SLURM_CONF": str(self.folder / "slurm.conf")}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        try:
            self._write_files()
            self._start_munged()
            self._daemon("slurmctld", "-D", "-i")  # -i: ignore a stale state (a fresh folder has none)
            self._daemon("slurmd", "-D", "-N", self.host)
            self._wait_idle()
        except BaseException:
            self.stop()
            raise

    def _write_files(self) -> None:
        os.chmod(self.folder, 0o755)  # munged refuses group/other-writable folders on its paths
        for sub in ("munge", "state", "spool", "log"):
            (self.folder / sub).mkdir(mode=0o755)
        key = self.folder / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        Path(self.env["SLURM_CONF"]).write_text(slurm_conf(self.folder, self.host, *_node(self.host)))

    def _start_munged(self) -> None:
        m = self.folder / "munge"
        self._daemon("munged", "-F", "--force", f"--socket={m}/munge.socket", f"--key-file={m}/munge.key",
                     f"--pid-file={m}/munged.pid", f"--log-file={self.folder}/log/munged.log",
                     f"--seed-file={m}/munged.seed")
        self._until(lambda: (m / "munge.socket").exists(), "munged did not create its socket")

    def _daemon(self, name: str, *args: str) -> None:
        """Start a daemon in the foreground (so its pid is the one to stop), its output to log/<name>.out."""
        with open(self.folder / "log" / f"{name}.out", "wb") as log:
            self.procs[name] = subprocess.Popen([_binary(name), *args], stdin=subprocess.DEVNULL, stdout=log,
                                                stderr=subprocess.STDOUT, env={**os.environ, **self.env},
                                                start_new_session=True)

    def _until(self, check: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with code {proc.returncode}; {self.logs()}")
            if check():
                return
            time.sleep(0.5)
        raise RuntimeError(f"{what} within {START_TIMEOUT_S} s; {self.logs()}")

    def _wait_idle(self) -> None:
        def idle() -> bool:
            out = self.run("sinfo", "-h", "-N", "-o", "%T").stdout.split()  # a line per partition
            return bool(out) and set(out) == {"idle"}
        self._until(idle, f"node {self.host} did not become idle")

    def run(self, *argv: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        """A SLURM client command against this cluster."""
        return subprocess.run(list(argv), capture_output=True, text=True, env={**os.environ, **self.env},
                              check=check, timeout=60)

    def jobs(self) -> list[str]:
        """Ids of the jobs not finished yet (pending, running, completing)."""
        return self.run("squeue", "-h", "-o", "%i").stdout.split()

    def logs(self) -> str:
        tails = []
        for f in sorted((self.folder / "log").glob("*")):
            lines = f.read_text(errors="replace").splitlines()[-8:]
            tails.append(f"--- {f.name}:\n" + "\n".join(lines))
        return "daemon logs:\n" + "\n".join(tails)

    def stop(self) -> None:
        """Cancel every job of this cluster, wait for them to end, then stop our daemons by their pids."""
        if "slurmd" in self.procs and self.procs["slurmd"].poll() is None and self.jobs():
            self.run("scancel", *self.jobs())
            deadline = time.monotonic() + 60
            while self.jobs() and time.monotonic() < deadline:
                time.sleep(1)
        for name in reversed(DAEMONS):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def main(argv: list[str]) -> int:
    """Run one command (after `--`) against a fresh local cluster, then stop it."""
    command = argv[argv.index("--") + 1:] if "--" in argv else argv
    why = unavailable()
    if why:
        print(why, file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: still stop the cluster on the way out
    with LocalCluster() as cluster:
        print(f"local SLURM cluster up: SLURM_CONF={cluster.env['SLURM_CONF']}", file=sys.stderr, flush=True)
        if not command:
            return 0
        child = subprocess.Popen(command, env={**os.environ, **cluster.env})
        try:
            return child.wait()
        finally:
            if child.poll() is None:
                child.terminate()
                child.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
