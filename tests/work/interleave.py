"""A seeded scheduler over real workers, the real queue and the real store (moto over HTTP).

Each simulated instance is a :class:`payload.worker.Worker` in a thread of this process, with
its own S3 client wrapped so that *every S3 request is a scheduling point*: the request
waits until the scheduler grants it, and the scheduler decides, from one seeded
``random.Random``, which instance moves next and what happens to its request — it goes
through, it meets a 500 from S3 (the store's fault), S3 does it but the answer is lost (the
client retries what already happened), or the instance is killed right there
(and never sends another byte: every later request of any of its threads dies too). Between
requests the scheduler may also deliver a message from SQS (a real receive), deliver one a
second time to another instance (a visibility expiry), stop an instance for a while (SIGSTOP:
its requests wait while others move, then it wakes up late), replace a job's input object
with other bytes, or send a message that lies about its params (another parameter set under
the original ``params_hash``).

After every step :meth:`Interleaving.check` asserts the commit protocol's invariants
(docs/work-plane.md, "The commit point"):

* ``DONE`` is written at most once: once seen, its bytes never change;
* every product ``DONE`` lists has exactly the bytes of its listed sha256, and equals the
  product computed outside the work plane, uninterrupted (:func:`reference_products`, the
  selftest job's chunk rule applied in-process) from the input bytes whose ETag ``DONE``
  names and the params the job was submitted with — so a product made from two inputs, or
  two parameter sets, or listing bytes overwritten later, fails;
* ``DONE``'s ``params_hash`` is the one the true params give.

When the chaos steps are used up, the scheduler only grants and delivers, and
:meth:`Interleaving.finish` asserts liveness: every job ends exactly once, ``DONE`` — or
``FAILED.json`` (invalid) only when its input was replaced — and at most one attempt in its
manifest ended ``done`` (an attempt that lost the race says ``superseded``).

Timing never decides an assertion: a step waits until every running instance is blocked at
its next request (or has finished), so the interleaving is the seed's, whatever the machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from contract.layout import ObsLayout
from contract.settings import WorkerConfig
from payload.imds import InstanceIdentity
from payload.outcomes import Outcome
from payload.records import DoneRecord, JobMessage, params_hash
from payload.spot import SpotWatcher
from payload.worker import Clients, Worker
from tests.work.conftest import reference_products

RAW = "ilv-raw"
PRODUCTS = "ilv-products"
# S3 calls that are scheduling points: every request an instance makes to the store.
GATED = frozenset(
    {
        "put_object",
        "get_object",
        "head_object",
        "delete_object",
        "list_objects_v2",
        "create_multipart_upload",
        "upload_part",
        "complete_multipart_upload",
        "abort_multipart_upload",
    }
)


class Killed(BaseException):
    """The instance died at this request (not an Exception: nothing in the worker catches it)."""


@dataclass
class _Request:
    instance: Instance
    op: str
    key: str
    verdict: str | None = None


@dataclass(eq=False)
class Instance:
    """One simulated spot instance: a Worker in a thread, its gate, what it holds."""

    name: str
    worker: Worker
    dead: bool = False
    stopped_for: int = 0  # steps its requests wait (SIGSTOP), then it continues late
    message: dict[str, Any] | None = None  # the SQS message it is handling
    thread: threading.Thread | None = None
    outcomes: list[str] = field(default_factory=list)

    @property
    def busy(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


class GatedClient:
    """A boto3 S3 client whose requests wait for the scheduler's verdict."""

    def __init__(self, client: Any, gate: Callable[[str, str], str]) -> None:
        self._client = client
        self._gate = gate

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name not in GATED:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self._gate(name, str(kwargs.get("Key", ""))) == "lost":
                # S3 did it, the answer never arrived: the client retries what already happened.
                attr(*args, **kwargs)
                raise ConnectionError(f"injected: the answer to {name} was lost")
            return attr(*args, **kwargs)

        return call


@dataclass
class Job:
    obs_id: str
    input_key: str
    params: dict[str, Any]
    message: JobMessage
    versions: dict[str, bytes]  # input ETag -> bytes it stood for
    replaced: bool = False
    lied: bool = False


def _selftest_params(rng: random.Random) -> dict[str, Any]:
    return {"chunks": rng.randint(2, 4), "chunk_bytes": rng.choice([256, 1000]), "chunk_seconds": 0}


class Interleaving:
    """One seeded run; see the module docstring.

    Parameters
    ----------
    s3, sqs : boto3 clients on the moto server (ungated: the scheduler's and checker's own)
    tmp : a directory for the instances' scratch space and the references
    seed : the one source of every choice
    """

    def __init__(
        self,
        s3: Any,
        sqs: Any,
        tmp: Path,
        seed: int,
        *,
        jobs: int = 2,
        instances: int = 3,
        chaos_steps: int = 150,
        p_kill: float = 0.04,
        p_fault: float = 0.04,
        p_stop: float = 0.03,
        p_duplicate: float = 0.05,
        p_replace: float = 0.01,
        p_lie: float = 0.01,
        scripted: bool = False,
    ) -> None:
        self.s3, self.sqs, self.tmp = s3, sqs, tmp
        self.rng = random.Random(seed)
        self.seed = seed
        self.chaos_steps = chaos_steps
        self.p = {
            "kill": p_kill,
            "fault": p_fault,
            "stop": p_stop,
            "duplicate": p_duplicate,
            "replace": p_replace,
            "lie": p_lie,
        }
        self.cond = threading.Condition()
        self.pending: list[_Request] = []
        self.steps = 0
        self.trace: list[str] = []
        self.done_seen: dict[str, bytes] = {}
        self.references: dict[tuple[str, str], dict[str, bytes]] = {}
        self._all: list[Instance] = []  # every instance ever started, the killed too
        self.granted: list[tuple[str, str]] = []  # (operation, key) of every request let through
        # One run per seed: several seeds may share one moto server (bench/interleavings.py).
        self.run_id = f"ilv-{seed}"
        for bucket in (RAW, PRODUCTS):
            s3.create_bucket(Bucket=bucket)
        self.dlq_url = sqs.create_queue(QueueName=f"ilv-dlq-{seed}")["QueueUrl"]
        self.queue_url = sqs.create_queue(QueueName=f"ilv-jobs-{seed}")["QueueUrl"]
        self.instances = [self._new_instance(i) for i in range(instances)]
        self.jobs: dict[str, Job] = {}
        if not scripted:
            for j in range(jobs):
                self.submit(f"obs-{j}", _selftest_params(self.rng), self.rng.randbytes(64))

    # --- setup -------------------------------------------------------------------------

    def submit(self, obs_id: str, params: dict[str, Any], data: bytes) -> Job:
        key = f"{self.run_id}/{obs_id}.dat"
        etag = self.s3.put_object(Bucket=RAW, Key=key, Body=data)["ETag"]
        message = JobMessage.create(
            run_id=self.run_id,
            obs_id=obs_id,
            input=f"s3://{RAW}/{key}",
            kind="selftest",
            params=params,
        )
        job = Job(obs_id, key, params, message, {etag: data})
        self.jobs[obs_id] = job
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=message.to_json())
        return job

    def _new_instance(self, number: int) -> Instance:
        name = f"i-{self.seed}-{number}-{len(self.trace)}"
        holder: list[Instance] = []

        def gate(op: str, key: str) -> str:
            return self._gate(holder[0], op, key)

        config = WorkerConfig(
            queue_url=self.queue_url,
            products_bucket=PRODUCTS,
            dlq_url=self.dlq_url,
            workdir=self.tmp / name,
            visibility_timeout=60,
            checkpoint_interval=0.05,
            retry_base=0.01,
            max_transient=3,
        )
        clients = Clients(s3=GatedClient(self.s3, gate), sqs=self.sqs)
        worker = Worker(
            config,
            clients,
            SpotWatcher(None),
            InstanceIdentity(instance_id=name),
            rng=random.Random(self.rng.random()),
        )
        instance = Instance(name, worker)
        holder.append(instance)
        self._all.append(instance)
        return instance

    # --- the gate (instance threads) ---------------------------------------------------

    def _gate(self, instance: Instance, op: str, key: str) -> str:
        with self.cond:
            if instance.dead:
                raise Killed(instance.name)
            request = _Request(instance, op, key)
            self.pending.append(request)
            self.cond.notify_all()
            while request.verdict is None and not instance.dead:
                self.cond.wait(0.5)
            self.pending.remove(request)
            self.cond.notify_all()
            verdict = "kill" if instance.dead else request.verdict
        if verdict == "kill":
            raise Killed(instance.name)
        if verdict == "fault":
            raise ClientError(
                {
                    "Error": {"Code": "InternalError", "Message": "injected"},
                    "ResponseMetadata": {"HTTPStatusCode": 500},
                },
                op,
            )
        return verdict

    def _run_instance(self, instance: Instance, message: dict[str, Any]) -> None:
        try:
            outcome = instance.worker.handle(message)
            instance.outcomes.append(outcome.value)
        except Killed:
            instance.outcomes.append("killed")
        except BaseException as exc:
            # Recorded, so an assertion on outcomes names what escaped the worker.
            instance.outcomes.append(f"escaped {type(exc).__name__}: {exc}")
            raise

    # --- scheduling --------------------------------------------------------------------

    def _settle(self, timeout: float = 20.0) -> None:
        """Wait until every running instance waits at a request or has finished its job."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while time.monotonic() < deadline:
                waiting = {id(r.instance) for r in self.pending}
                if all(not i.busy or id(i) in waiting for i in self.instances):
                    return
                self.cond.wait(0.01)

    def _receive(self) -> dict[str, Any] | None:
        got = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=1,
            WaitTimeSeconds=0,
            VisibilityTimeout=60,
            AttributeNames=["ApproximateReceiveCount"],
        ).get("Messages", [])
        return got[0] if got else None

    def _start(self, instance: Instance, message: dict[str, Any]) -> None:
        instance.message = message
        instance.thread = threading.Thread(
            target=self._run_instance, args=(instance, message), daemon=True
        )
        instance.thread.start()

    def _kill(self, instance: Instance) -> None:
        """The instance is gone; its message becomes visible again (its visibility expired)."""
        instance.dead = True
        # Its threads unwind at once (every request raises); its heartbeat stops with them,
        # so it cannot extend the visibility we are about to expire.
        if instance.thread is not None:
            instance.thread.join(timeout=30)
            # An invariant too: a worker whose instance died must not be left waiting on
            # work no thread will do (it once hung in flush after its uploader was killed).
            assert not instance.thread.is_alive(), f"{instance.name} hangs after its kill"
        if instance.message is not None:
            # A ClientError: already deleted by another instance that finished the job.
            with contextlib.suppress(ClientError):
                self.sqs.change_message_visibility(
                    QueueUrl=self.queue_url,
                    ReceiptHandle=instance.message["ReceiptHandle"],
                    VisibilityTimeout=0,
                )
        index = self.instances.index(instance)
        self.instances[index] = self._new_instance(index)

    def step(self, *, chaos: bool) -> None:
        """One scheduling decision, then the invariants."""
        self._settle()
        self.steps += 1
        rng = self.rng
        idle = [i for i in self.instances if not i.busy]
        busy = [i for i in self.instances if i.busy]
        for instance in busy:
            instance.stopped_for = max(0, instance.stopped_for - 1)
        if chaos and rng.random() < self.p["replace"]:
            self._replace_input(rng.choice(list(self.jobs.values())))
        if chaos and rng.random() < self.p["lie"]:
            self._lie(rng.choice(list(self.jobs.values())))
        if chaos and busy and rng.random() < self.p["stop"]:
            victim = rng.choice(busy)
            victim.stopped_for = rng.randint(3, 40)
            self.trace.append(f"stop {victim.name} {victim.stopped_for}")
        if idle and chaos and busy and rng.random() < self.p["duplicate"]:
            held = rng.choice(busy)
            if held.message is not None:
                self.trace.append(f"duplicate {held.name} -> {idle[0].name}")
                self._start(idle[0], dict(held.message))
                return self.check()
        with self.cond:
            live = [r for r in self.pending if not r.instance.dead]
            movable = [r for r in live if r.instance.stopped_for == 0]
            if not chaos and not movable:
                movable = live  # calm: stopped instances wake up
                for r in movable:
                    r.instance.stopped_for = 0
        if idle and (not movable or rng.random() < 0.3):
            message = self._receive()
            if message is not None:
                self.trace.append(f"deliver -> {idle[0].name}")
                self._start(idle[0], message)
                return self.check()
        if movable:
            request = rng.choice(movable)
            roll = rng.random()
            verdict = "go"
            if chaos and roll < self.p["kill"]:
                verdict = "kill"
            elif chaos and roll < self.p["kill"] + self.p["fault"]:
                verdict = rng.choice(["fault", "lost"])
            self.trace.append(f"{verdict} {request.instance.name} {request.op} {request.key}")
            self.grant(request, verdict)
        self.check()

    def grant(self, request: _Request, verdict: str) -> None:
        self.granted.append((request.op, request.key))
        with self.cond:
            request.verdict = verdict
            if verdict == "kill":
                request.instance.dead = True
            self.cond.notify_all()
        if verdict == "kill" and request.instance in self.instances:
            self._kill(request.instance)

    def replace_input(self, job: Job) -> None:
        self._replace_input(job)

    def lie(self, job: Job) -> None:
        self._lie(job)

    def _replace_input(self, job: Job) -> None:
        if job.replaced:
            return
        data = self.rng.randbytes(64)
        etag = self.s3.put_object(Bucket=RAW, Key=job.input_key, Body=data)["ETag"]
        job.versions[etag] = data
        job.replaced = True
        self.trace.append(f"replace input of {job.obs_id}")

    def _lie(self, job: Job) -> None:
        """A message with other params under the original params_hash (the stale-hash bug)."""
        if job.lied:
            return
        other = dict(job.params, chunk_bytes=job.params["chunk_bytes"] + 1)
        body = json.loads(job.message.to_json()) | {"params": other}
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(body))
        job.lied = True
        self.trace.append(f"lie about the params of {job.obs_id}")

    # --- scripted schedules (the regression tests) -----------------------------------

    def deliver(self, index: int, message: dict[str, Any] | None = None) -> Instance:
        """Start instance ``index`` on ``message`` (default: the next one the queue gives)."""
        instance = self.instances[index]
        message = message or self._receive()
        assert message is not None, "nothing to deliver"
        self._start(instance, message)
        return instance

    def advance(self, instance: Instance, until: Callable[[_Request], bool]) -> _Request:
        """Grant ``instance``'s requests until one matches ``until``; return it, not granted."""
        for _ in range(10_000):
            self._settle()
            with self.cond:
                mine = [r for r in self.pending if r.instance is instance]
            assert mine, f"{instance.name} finished before the point: {instance.outcomes}"
            for request in mine:
                if until(request):
                    return request
            self.grant(mine[0], "go")
            self.check()
        raise AssertionError("advance did not reach the point")

    def drain(self, instance: Instance) -> None:
        """Grant ``instance``'s requests until it has finished its job."""
        for _ in range(10_000):
            self._settle()
            if not instance.busy:
                return
            with self.cond:
                mine = [r for r in self.pending if r.instance is instance]
            if mine:
                self.grant(mine[0], "go")
            self.check()
        raise AssertionError(f"{instance.name} did not finish")

    def calm(self, limit: int = 3000) -> None:
        """Only grants and deliveries until everything has ended; then :meth:`finish`."""
        for _ in range(limit):
            if self.quiet():
                break
            self.step(chaos=False)
        self.finish()

    def purge_queue(self) -> None:
        """Delete every message now in the queue (a scripted schedule's clean slate)."""
        while (message := self._receive()) is not None:
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    # --- invariants --------------------------------------------------------------------

    def _get(self, key: str) -> bytes | None:
        try:
            body: bytes = self.s3.get_object(Bucket=PRODUCTS, Key=key)["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return None
        return body

    def reference(self, job: Job, etag: str) -> dict[str, bytes]:
        if (job.obs_id, etag) not in self.references:
            where = self.tmp / f"ref-{job.obs_id}-{len(self.references)}"
            where.mkdir(parents=True)
            self.references[job.obs_id, etag] = reference_products(
                job.message, job.versions[etag], where
            )
        return self.references[job.obs_id, etag]

    def check(self) -> None:
        """The invariants that hold after every step (module docstring)."""
        for job in self.jobs.values():
            layout = ObsLayout(self.run_id, job.obs_id)
            raw = self._get(layout.done)
            where = f"seed {self.seed} step {self.steps} {job.obs_id}"
            if raw is None:
                assert job.obs_id not in self.done_seen, f"{where}: DONE disappeared"
                continue
            first = self.done_seen.setdefault(job.obs_id, raw)
            assert raw == first, f"{where}: DONE was rewritten"
            done = DoneRecord.from_json(raw)
            assert done.params_hash == params_hash("selftest", job.params), (
                f"{where}: DONE of another parameter set"
            )
            etag = done.input_identity.etag if done.input_identity else None
            assert etag in job.versions, f"{where}: DONE names no input version ({etag})"
            expected = self.reference(job, etag)
            assert set(done.products) == set(expected), where
            for name, entry in done.products.items():
                data = self._get(entry.key)
                assert data is not None, f"{where}: {name} listed by DONE is gone"
                assert hashlib.sha256(data).hexdigest() == entry.sha256, (
                    f"{where}: {name} no longer has the bytes DONE lists"
                )
                assert data == expected[name], (
                    f"{where}: {name} differs from the uninterrupted reference of its input"
                )

    def run(self, *, calm_limit: int = 3000) -> None:
        """Chaos steps, then calm steps until every job has ended; then :meth:`finish`."""
        for _ in range(self.chaos_steps):
            self.step(chaos=True)
        for _ in range(calm_limit):
            if self.quiet():
                break
            self.step(chaos=False)
        self.finish()

    def quiet(self) -> bool:
        """Every job ended (DONE or FAILED.json), no instance busy, the queue empty."""
        self._settle()
        if any(i.busy for i in self.instances):
            return False
        for job in self.jobs.values():
            layout = ObsLayout(self.run_id, job.obs_id)
            if self._get(layout.done) is None and self._get(layout.failed) is None:
                return False
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) == 0

    def finish(self) -> None:
        """Liveness and the attempts' own story, once nothing moves any more."""
        assert self.quiet(), f"seed {self.seed}: not finished after the calm steps"
        self.check()
        for job in self.jobs.values():
            layout = ObsLayout(self.run_id, job.obs_id)
            done = self._get(layout.done)
            failed = self._get(layout.failed)
            where = f"seed {self.seed} {job.obs_id}"
            if done is None:
                assert failed is not None, f"{where}: neither DONE nor FAILED.json"
                record = json.loads(failed)
                assert record["outcome"] == Outcome.INVALID.value, f"{where}: {record}"
                assert job.replaced or job.lied, f"{where}: failed without cause: {record}"
            manifest = self._get(layout.manifest)
            if manifest is not None:
                reasons = [a.get("reason") for a in json.loads(manifest)["attempts"]]
                assert reasons.count(Outcome.DONE.value) <= (1 if done else 0), (
                    f"{where}: attempts ending done: {reasons}"
                )

    def summary(self) -> dict[str, int]:
        """What the run did: counts of each kind of step and of the attempts' outcomes."""
        counts: dict[str, int] = {"steps": self.steps}
        for line in self.trace:
            word = line.split()[0]
            counts[word] = counts.get(word, 0) + 1
        for instance in self._all:
            for outcome in instance.outcomes:
                counts[f"outcome:{outcome}"] = counts.get(f"outcome:{outcome}", 0) + 1
        for job in self.jobs.values():
            end = "done" if self._get(ObsLayout(self.run_id, job.obs_id).done) else "failed"
            counts[f"job:{end}"] = counts.get(f"job:{end}", 0) + 1
        return counts

    def close(self) -> None:
        """Release every waiting request as a kill, so no thread outlives the test."""
        with self.cond:
            for instance in self.instances:
                instance.dead = True
            for request in self.pending:
                request.verdict = "kill"
            self.cond.notify_all()
        for instance in self.instances:
            if instance.thread is not None:
                instance.thread.join(timeout=10)
