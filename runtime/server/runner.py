"""Running the app: uvicorn in the foreground (``repertory serve``), in a thread (tests, examples),
or as a Ray Serve deployment with replicas (``--ray-serve``)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from repertory.errors import InvalidInput, ServerUnavailable
from repertory.server.config import ServerConfig

__all__ = ["ServerHandle", "app", "build_application", "run", "serve_in_thread", "serve_ray"]


@dataclass
class ServerHandle:
    """A server started by :func:`serve_in_thread`: its base ``url`` (``http://host:port/agent``)
    and ``stop()``. Also a context manager."""

    url: str
    _server: Any
    _thread: threading.Thread

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting requests, finish the ones in flight, and wait for the thread."""
        self._server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _uvicorn_config(config: ServerConfig, **kwargs: Any) -> Any:
    import uvicorn

    from repertory.server.app import create_app

    return uvicorn.Config(create_app(config), host=config.host, port=config.port, log_config=None,
                          access_log=False, server_header=False, **kwargs)


def serve_in_thread(config: ServerConfig | None = None, *, timeout: float = 30.0) -> ServerHandle:
    """Start the server on a daemon thread and return once it accepts connections.

    ``ServerConfig(port=0)`` (as here by default) binds a free port; the handle's ``url`` has it.
    """
    import uvicorn

    config = config or ServerConfig(port=0)
    server = uvicorn.Server(_uvicorn_config(config, lifespan="on"))
    failure: list[BaseException] = []

    def target() -> None:
        try:
            server.run()
        except BaseException as exc:  # reported to the caller below
            failure.append(exc)

    thread = threading.Thread(target=target, name="repertory-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if failure or not thread.is_alive():
            raise ServerUnavailable(f"the server did not start: {failure[0] if failure else 'it exited'}")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise ServerUnavailable(f"the server did not start within {timeout} s")
        time.sleep(0.01)
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    host = f"[{host}]" if ":" in host else host
    return ServerHandle(f"http://{host}:{port}/agent", server, thread)


def run(config: ServerConfig) -> None:
    """Serve in the foreground until interrupted (``repertory serve``)."""
    import uvicorn

    uvicorn.Server(_uvicorn_config(config, lifespan="on")).run()


class ReplicaApp:
    """One Ray Serve replica: builds the app in the replica, so secrets are read there."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config

    def __serve_build_asgi_app__(self) -> Any:
        from repertory.server.app import create_app

        return create_app(self.config)


def build_application(config: ServerConfig, replicas: int = 2, *, name: str = "repertory") -> Any:
    """The server as a Ray Serve application of ``replicas`` replicas (not yet running).

    Secrets are not shipped with the application: the replicas read them from their own
    environment or files (``REPERTORY_SECRET_KEYS(_FILE)``, ``REPERTORY_ADMIN_KEY(_FILE)``).
    """
    if config.secret_keys is not None or config.admin_key is not None:
        raise InvalidInput("Ray Serve replicas read their secrets from their environment or from files: set "
                           "REPERTORY_SECRET_KEYS / REPERTORY_ADMIN_KEY (or their _FILE forms), or pass "
                           "secret_keys_file= / admin_key_file=, instead of secret values")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 1:
        raise InvalidInput("replicas must be a positive int")
    from ray import serve

    deployment = serve.deployment(serve.ingress()(ReplicaApp), name=name, num_replicas=replicas,
                                  ray_actor_options={"num_cpus": 0})
    return deployment.bind(config.without_secrets())


_APP_ARGS = {"store", "namespace", "agents_file", "rate_limit", "num_replicas", "max_body_bytes", "token_ttl"}


def app(args: dict[str, Any]) -> Any:
    """The application builder a Ray Serve config names (``import_path:
    repertory.server.runner:app``, as deploy/kuberay/rayservice.yaml does).

    ``args`` (all optional): ``store`` (else ``$REPERTORY_STORE``, e.g. from a Kubernetes
    Secret), ``namespace``, ``agents_file``, ``rate_limit`` ("" for none), ``num_replicas``,
    ``max_body_bytes``, ``token_ttl``. The runtime starts in each replica, on the cluster the
    replica runs in; token keys and the admin key come from the replicas' environment.
    """
    unknown = set(args) - _APP_ARGS
    if unknown:
        raise InvalidInput(f"unknown application args {sorted(unknown)}; known: {sorted(_APP_ARGS)}")
    # Detached: the session hosts outlive the replica that happened to start them.
    init: dict[str, Any] = {"namespace": str(args.get("namespace") or "repertory"), "detached": True}
    if args.get("store"):
        init["store"] = str(args["store"])
    try:
        replicas = int(args.get("num_replicas", 2))
        extra: dict[str, Any] = {}
        if "max_body_bytes" in args:
            extra["max_body_bytes"] = int(args["max_body_bytes"])
        if "token_ttl" in args:
            extra["token_ttl"] = float(args["token_ttl"])
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"application args: {exc}; num_replicas and max_body_bytes are integers, "
                           "token_ttl a number of seconds") from None
    rate = args.get("rate_limit", "600/minute")
    config = ServerConfig(host="0.0.0.0", agents_file=args.get("agents_file") or None,  # noqa: S104 (Serve binds)
                          rate_limit=str(rate) if rate else None, init=init, **extra)
    return build_application(config, replicas)


def serve_ray(config: ServerConfig, replicas: int = 2, *, name: str = "repertory", blocking: bool = False) -> str:
    """Run the app as a Ray Serve deployment of ``replicas`` replicas on the connected Ray
    cluster; returns its URL (``http://host:port/agent``).

    Secrets are not shipped with the deployment: give them to the replicas through their
    environment or files (``REPERTORY_SECRET_KEYS(_FILE)``, ``REPERTORY_ADMIN_KEY(_FILE)``).
    """
    application = build_application(config, replicas, name=name)
    from ray import serve

    serve.start(http_options={"host": config.host, "port": config.port})
    serve.run(application, name=name, route_prefix="/", blocking=blocking)
    return f"http://{config.host}:{config.port}/agent"
