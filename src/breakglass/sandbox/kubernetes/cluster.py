"""`SandboxCluster`: the sandbox API server on 127.0.0.1, run from synchronous code.

The emulator lives on an asyncio event loop in a background thread. The synchronous helpers
(`apply`, `get`, `list_objects`, `settle`, ...) submit coroutines to that loop and wait for
them, so tests and CLI commands need no event loop of their own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

import aiohttp.web
import yaml

from breakglass.sandbox.kubernetes.emulator import SandboxEmulator
from breakglass.sandbox.kubernetes.errors import ObjectNotFoundError, SandboxError

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

logger = logging.getLogger(__name__)

T = TypeVar("T")

HOST = "127.0.0.1"
# Open watch streams are cancelled before the server stops, so connections close at once.
# This bounds the wait for a request that is still being served.
_SHUTDOWN_SECONDS = 2.0
_START_SECONDS = 30.0


class SandboxCluster:
    """A Kubernetes API server with its core controllers, for tests, demos and drills.

    It serves the official client over HTTP on 127.0.0.1 (`url`, `write_kubeconfig`), fills
    in metadata, filters by selectors, rolls Deployments out through ReplicaSets, plays the
    kubelet for Jobs by running their command as a local process, and serves pod logs. See
    `breakglass.sandbox.kubernetes` for what it emulates and what it leaves out.

    `clock` returns monotonic seconds; rollouts, progress deadlines and timestamps follow
    it, so a fake clock lets tests cover minutes in milliseconds. Nothing moves on its own
    unless `tick_interval` (real seconds) is set: every API request and `settle()`
    reconcile at the clock's current time. `rollout_seconds` is how long a new pod takes
    to become Ready on that clock. `job_timeout` bounds each Job process in real seconds.
    With `instant_jobs`, a request that arrives while Job processes run waits for them, so
    Jobs finish in zero time on the injected clock. `port` 0 picks a free port.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        rollout_seconds: float = 0.0,
        job_timeout: float = 60.0,
        instant_jobs: bool = True,
        tick_interval: float | None = None,
        workdir: Path | None = None,
        port: int = 0,
        call_timeout: float = 120.0,
    ) -> None:
        if rollout_seconds < 0 or job_timeout <= 0 or call_timeout <= 0:
            raise ValueError(
                "rollout_seconds must be >= 0; job_timeout and call_timeout must be > 0"
            )
        if tick_interval is not None and tick_interval <= 0:
            raise ValueError(f"tick_interval must be positive seconds or None, got {tick_interval}")
        self._clock = clock
        self._rollout_seconds = rollout_seconds
        self._job_timeout = job_timeout
        self._instant_jobs = instant_jobs
        self._tick_interval = tick_interval
        self._workdir = workdir
        self._own_workdir: Path | None = None
        self._port = port
        self._call_timeout = call_timeout
        self._state = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._emulator: SandboxEmulator | None = None
        self._runner: aiohttp.web.ServerRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._url: str | None = None
        self._stopped = False

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the server and wait until it accepts connections; return self."""
        with self._state:
            if self._thread is not None or self._stopped:
                raise SandboxError("a SandboxCluster starts once; create a new one to start again")
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=_run_loop, args=(loop,), name="breakglass-sandbox-k8s", daemon=True
            )
            thread.start()
            self._loop, self._thread = loop, thread
            future = asyncio.run_coroutine_threadsafe(self._serve(), loop)
            try:
                future.result(_START_SECONDS)
            except BaseException:
                self._stop_locked()
                raise
        logger.info("Kubernetes sandbox serving on %s", self._url)
        return self

    async def _serve(self) -> None:
        if self._workdir is None:
            self._own_workdir = Path(tempfile.mkdtemp(prefix="breakglass-sandbox-"))
        workdir = self._workdir or self._own_workdir
        assert workdir is not None
        emulator = SandboxEmulator(
            clock=self._clock,
            rollout_seconds=self._rollout_seconds,
            job_timeout=self._job_timeout,
            instant_jobs=self._instant_jobs,
            workdir=workdir,
        )
        emulator.reconcile_reads = self._tick_interval is None
        await emulator.__aenter__()
        self._emulator = emulator
        await emulator.seed(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}
        )
        runner = aiohttp.web.ServerRunner(
            aiohttp.web.Server(emulator), shutdown_timeout=_SHUTDOWN_SECONDS
        )
        await runner.setup()
        self._runner = runner
        site = aiohttp.web.TCPSite(runner, HOST, self._port)
        await site.start()
        port = runner.addresses[0][1]
        self._url = f"http://{HOST}:{port}"
        if self._tick_interval is not None:
            self._ticker = asyncio.create_task(self._tick(self._tick_interval))

    async def _tick(self, interval: float) -> None:
        assert self._emulator is not None
        while True:
            await asyncio.sleep(interval)
            try:
                await self._emulator.reconcile_now()
            except Exception:
                # The ticker is the only thing that moves a real-clock sandbox forward, so it
                # must survive a failed pass.
                logger.exception("sandbox reconcile failed; retrying in %g s", interval)

    def stop(self) -> None:
        """Stop the server, kill Job processes and end the thread. Safe to call twice."""
        with self._state:
            self._stop_locked()

    def _stop_locked(self) -> None:
        loop, thread = self._loop, self._thread
        self._stopped = True
        if loop is None or thread is None or not thread.is_alive():
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(_START_SECONDS)
        except Exception:
            # Stopping goes on regardless: the loop and its thread must not outlive stop().
            logger.exception("sandbox shutdown failed; stopping its event loop anyway")
        loop.call_soon_threadsafe(loop.stop)
        thread.join(_START_SECONDS)
        if thread.is_alive():
            raise SandboxError(f"the sandbox thread did not end within {_START_SECONDS:g} s")
        self._loop = None
        if self._own_workdir is not None:
            shutil.rmtree(self._own_workdir, ignore_errors=True)
        logger.info("Kubernetes sandbox on %s stopped", self._url)

    async def _shutdown(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        if self._emulator is not None:
            await self._emulator.shutdown()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._emulator is not None:
            await self._emulator.__aexit__(None, None, None)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- connecting -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The API server's base URL, `http://127.0.0.1:PORT`."""
        if self._url is None:
            raise SandboxError("the sandbox is not started; call start() first")
        return self._url

    @property
    def emulator(self) -> SandboxEmulator:
        """The kmock emulator. Its state belongs to the sandbox's event loop thread."""
        if self._emulator is None:
            raise SandboxError("the sandbox is not started; call start() first")
        return self._emulator

    def write_kubeconfig(
        self, path: Path | str, *, context: str = "sandbox", namespace: str = "default"
    ) -> Path:
        """Write a kubeconfig (mode 0600) whose current context points at the sandbox."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            # The sandbox checks no credentials, so the user entry carries none.
            "users": [{"name": context, "user": {}}],
            "contexts": [
                {
                    "name": context,
                    "context": {"cluster": context, "user": context, "namespace": namespace},
                }
            ],
            "current-context": context,
        }
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch(mode=0o600, exist_ok=True)
        target.chmod(0o600)
        target.write_text(yaml.safe_dump(config, sort_keys=False))
        return target

    def api_client(self) -> ApiClient:
        """Return an official `kubernetes` client aimed at the sandbox."""
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = self.url
        # The client takes HTTP(S)_PROXY from the environment; the sandbox is always local.
        configuration.proxy = None
        return client.ApiClient(configuration)

    # -- direct access ----------------------------------------------------------------------

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create the object, or replace it whole if it exists; return the stored object.

        Unlike the API, this keeps a given `status` (so tests can seed states) and creates
        the object's namespace if it is missing. Controllers react before it returns.
        """
        return self._call(lambda emulator: emulator.seed(obj))

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
        """Return the stored object; raise ObjectNotFoundError if there is none."""
        found = self._call(lambda emulator: emulator.read(api_version, kind, namespace, name))
        if found is None:
            where = f" in namespace {namespace}" if namespace else ""
            raise ObjectNotFoundError(f"{kind} {name}{where} not found in the sandbox")
        return found

    def list_objects(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str = "",
    ) -> list[dict[str, Any]]:
        """Return the objects of a kind (all namespaces when None), sorted by namespace and name."""
        return self._call(
            lambda emulator: emulator.read_all(api_version, kind, namespace, label_selector)
        )

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> None:
        """Delete an object as the API does, its dependents going with it."""
        self._call(lambda emulator: emulator.remove(api_version, kind, namespace, name))

    def settle(self, timeout: float = 30.0) -> None:
        """Reconcile at the clock's current time and wait until Job processes have ended.

        Raises SandboxError if Job processes still run after `timeout` real seconds.
        """
        try:
            self._call(lambda emulator: emulator.settle(timeout), timeout=timeout + 5)
        except TimeoutError as e:
            raise SandboxError(f"the sandbox did not settle within {timeout:g} s: {e}") from e

    def pod_log(
        self, namespace: str, pod: str, container: str | None = None, *, previous: bool = False
    ) -> str:
        """Return a container's log, as the pod log endpoint serves it."""

        async def read(emulator: SandboxEmulator) -> str:
            found = await emulator.read("v1", "Pod", namespace, pod)
            if found is None:
                raise ObjectNotFoundError(
                    f"pod {pod} in namespace {namespace} not found in the sandbox"
                )
            return emulator.kubelet.read_log(found, container, previous)

        return self._call(read)

    def set_pod_log(
        self, namespace: str, pod: str, container: str, text: str, *, previous: bool = False
    ) -> None:
        """Replace the log a container serves, e.g. to give a pod a telling error message."""

        async def write(emulator: SandboxEmulator) -> None:
            emulator.kubelet.set_log(namespace, pod, container, text, previous=previous)

        self._call(write)

    def _call(
        self,
        work: Callable[[SandboxEmulator], Coroutine[Any, Any, T]],
        timeout: float | None = None,
    ) -> T:
        loop, emulator = self._loop, self._emulator
        if loop is None or emulator is None or self._stopped:
            raise SandboxError("the sandbox is not running; call start() first")
        if threading.current_thread() is self._thread:
            raise SandboxError(
                "the synchronous helpers cannot run on the sandbox's own event loop thread; "
                "await the emulator's coroutines there instead"
            )
        limit = timeout if timeout is not None else self._call_timeout
        try:
            future = asyncio.run_coroutine_threadsafe(work(emulator), loop)
            return future.result(limit)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise SandboxError(f"the sandbox did not respond within {limit:g} s") from None
        except (concurrent.futures.CancelledError, RuntimeError) as e:
            # stop() on another thread cancelled the call or closed the loop first.
            if not self._stopped:
                raise
            raise SandboxError("the sandbox stopped before the call finished") from e


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        # Whatever still runs (a cancelled request handler, a process waiter) ends here, on
        # the loop's own thread, before the loop closes.
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
