"""deploy/: every manifest parses, uses only fields its schema knows, and names only commands,
options, extras, secrets and import paths that exist; the Redis configuration does what its
comments promise on a real redis-server."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import time
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def _docs(name: str) -> list[dict]:
    return list(yaml.safe_load_all((DEPLOY / name).read_text()))


# A pinned structural schema of the KubeRay v1 fields (ray-operator/apis/ray/v1/*_types.go):
# unknown keys at the KubeRay levels are refused, as the CRD's structural schema prunes them.
_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_ENV = {"type": "array", "items": {
    "type": "object", "required": ["name"], "additionalProperties": False,
    "properties": {"name": {"type": "string"}, "value": {"type": "string"}, "valueFrom": {
        "type": "object", "additionalProperties": False, "properties": {
            "secretKeyRef": {"type": "object", "required": ["name", "key"], "additionalProperties": False,
                             "properties": {"name": {"type": "string"}, "key": {"type": "string"},
                                            "optional": {"type": "boolean"}}},
            "configMapKeyRef": {"type": "object"}, "fieldRef": {"type": "object"}}}}}}
_QUANTITY = {"type": "object", "additionalProperties": {"type": "string", "pattern": r"^[0-9.]+(m|Ki|Mi|Gi|Ti)?$"}}
_POD_TEMPLATE = {"type": "object", "required": ["spec"], "properties": {"metadata": {"type": "object"}, "spec": {
    "type": "object", "required": ["containers"], "properties": {"containers": {
        "type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["name", "image"],
            "properties": {"name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                           "image": {"type": "string"}, "env": _ENV,
                           "resources": {"type": "object", "additionalProperties": False,
                                         "properties": {"requests": _QUANTITY, "limits": _QUANTITY}},
                           "ports": {"type": "array", "items": {
                               "type": "object", "required": ["containerPort"],
                               "properties": {"containerPort": {"type": "integer"},
                                              "name": {"type": "string", "maxLength": 15}}}}}}}}}}}
_HEAD = {"type": "object", "required": ["rayStartParams", "template"], "additionalProperties": False,
         "properties": {"serviceType": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
                        "headService": {"type": "object"}, "enableIngress": {"type": "boolean"},
                        "rayStartParams": _STR_MAP, "template": _POD_TEMPLATE}}
_WORKER = {"type": "object", "required": ["groupName", "rayStartParams", "template"], "additionalProperties": False,
           "properties": {"groupName": {"type": "string"}, "replicas": {"type": "integer", "minimum": 0},
                          "minReplicas": {"type": "integer", "minimum": 0},
                          "maxReplicas": {"type": "integer", "minimum": 0},
                          "numOfHosts": {"type": "integer", "minimum": 1}, "idleTimeoutSeconds": {"type": "integer"},
                          "suspend": {"type": "boolean"}, "rayStartParams": _STR_MAP, "template": _POD_TEMPLATE,
                          "scaleStrategy": {"type": "object"}}}
_CLUSTER_SPEC = {"type": "object", "required": ["headGroupSpec"], "additionalProperties": False,
                 "properties": {"headGroupSpec": _HEAD, "workerGroupSpecs": {"type": "array", "items": _WORKER},
                                "rayVersion": {"type": "string"}, "enableInTreeAutoscaling": {"type": "boolean"},
                                "autoscalerOptions": {"type": "object"}, "headServiceAnnotations": _STR_MAP,
                                "suspend": {"type": "boolean"}, "gcsFaultToleranceOptions": {"type": "object"},
                                "managedBy": {"type": "string"}, "authOptions": {"type": "object"}}}
_META = {"type": "object", "required": ["name"]}
SCHEMAS = {
    "RayCluster": {"type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
                   "properties": {"apiVersion": {"const": "ray.io/v1"}, "metadata": _META, "spec": _CLUSTER_SPEC}},
    "RayService": {"type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
                   "properties": {"apiVersion": {"const": "ray.io/v1"}, "metadata": _META, "spec": {
                       "type": "object", "required": ["serveConfigV2", "rayClusterConfig"],
                       "additionalProperties": False,
                       "properties": {"serveConfigV2": {"type": "string"}, "rayClusterConfig": _CLUSTER_SPEC,
                                      "upgradeStrategy": {"type": "object"},
                                      "excludeHeadPodFromServeSvc": {"type": "boolean"},
                                      "serveService": {"type": "object"},
                                      "rayClusterDeletionDelaySeconds": {"type": "integer"}}}}},
    "Secret": {"type": "object", "required": ["apiVersion", "kind", "metadata"],
               "properties": {"apiVersion": {"const": "v1"}, "metadata": _META, "stringData": _STR_MAP}},
}


def _manifests() -> list[dict]:
    return [d for f in sorted((DEPLOY / "kuberay").glob("*.yaml")) for d in _docs(f"kuberay/{f.name}")]


def _cluster_specs() -> list[dict]:
    specs = []
    for doc in _manifests():
        if doc["kind"] == "RayCluster":
            specs.append(doc["spec"])
        elif doc["kind"] == "RayService":
            specs.append(doc["spec"]["rayClusterConfig"])
    return specs


def _containers(spec: dict) -> list[dict]:
    groups = [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


def test_every_manifest_matches_its_kuberay_schema():
    kinds = [d["kind"] for d in _manifests()]
    assert {"RayCluster", "RayService", "Secret"} <= set(kinds)
    for doc in _manifests():
        jsonschema.validate(doc, SCHEMAS[doc["kind"]])


def test_the_schema_refuses_what_kuberay_would_refuse():
    """The structural check is not vacuous: a misspelt field, an int rayStartParam and a
    container without an image all fail it."""
    import copy

    good = next(d for d in _manifests() if d["kind"] == "RayCluster")
    for mutate in (lambda d: d["spec"].__setitem__("workerGroupSpec", []),
                   lambda d: d["spec"]["headGroupSpec"]["rayStartParams"].__setitem__("num-cpus", 2),
                   lambda d: d["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0].pop("image"),
                   lambda d: d["spec"]["workerGroupSpecs"][0].pop("groupName")):
        bad = copy.deepcopy(good)
        mutate(bad)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, SCHEMAS["RayCluster"])


def test_ray_versions_agree_with_the_package_pin():
    import ray

    pin = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    ray_pin = next(d for d in pin if d.startswith("ray=="))
    minor = ray_pin.removeprefix("ray==").removesuffix(".*")
    assert ray.__version__.startswith(minor + ".")
    for spec in _cluster_specs():
        assert spec["rayVersion"] == ray.__version__
    image = re.search(r"^ARG RAY_IMAGE=rayproject/ray:([0-9.]+)-", (DEPLOY / "Dockerfile").read_text(), re.M)
    assert image and image.group(1) == ray.__version__


def test_ray_start_params_are_ray_start_options():
    from ray.scripts.scripts import start

    options = {opt.lstrip("-") for p in start.params for opt in p.opts}
    for spec in _cluster_specs():
        for group in [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])]:
            assert set(group["rayStartParams"]) <= options, set(group["rayStartParams"]) - options
    launcher = yaml.safe_load((DEPLOY / "ray-cluster.yaml").read_text())
    for cmd in launcher["head_start_ray_commands"] + launcher["worker_start_ray_commands"]:
        cmd = cmd.split(";")[-1].strip()
        if cmd == "ray stop":
            continue
        argv = shlex.split(cmd)
        assert argv[:2] == ["ray", "start"]
        start.make_context("start", argv[2:])  # raises on an unknown option


def test_every_secret_the_pods_read_is_declared_with_its_key():
    declared = {(d["metadata"]["name"], k) for d in _manifests() if d["kind"] == "Secret" for k in d["stringData"]}
    read = {(e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
            for spec in _cluster_specs() for c in _containers(spec) for e in c.get("env", []) if "valueFrom" in e}
    assert read and read <= declared, read - declared
    names = {e["name"] for spec in _cluster_specs() for c in _containers(spec) for e in c.get("env", [])}
    # Every variable the pods set is one the package reads.
    source = "\n".join(p.read_text() for p in (ROOT / "runtime").rglob("*.py"))
    for name in names:
        assert name in source, f"{name} is set in deploy/ but read nowhere"


def test_the_serve_config_is_valid_and_its_application_builds(monkeypatch):
    from ray.serve.schema import ServeDeploySchema

    from repertory.errors import InvalidInput

    service = next(d for d in _manifests() if d["kind"] == "RayService")
    config = ServeDeploySchema.model_validate(yaml.safe_load(service["spec"]["serveConfigV2"]))
    (application,) = config.applications
    module, attr = application.import_path.split(":")
    builder = getattr(__import__(module, fromlist=[attr]), attr)
    monkeypatch.setenv("REPERTORY_STORE", "redis://127.0.0.1:6379/0")
    built = builder(application.args)
    assert type(built).__name__ == "Application"
    deployment = built._bound_deployment
    assert deployment.num_replicas == application.args["num_replicas"]
    config_arg = deployment.init_args[0]
    assert config_arg.secret_keys is None and config_arg.admin_key is None  # secrets stay in the pods
    assert config_arg.init["detached"] is True and "store" not in config_arg.init
    with pytest.raises(InvalidInput, match="unknown application args"):
        builder({"num_replica": 2})
    with pytest.raises(InvalidInput, match="num_replicas"):
        builder({"num_replicas": "two"})


def test_the_store_url_comes_from_the_environment(monkeypatch, tmp_path):
    from repertory.config import Settings

    monkeypatch.setenv("REPERTORY_STORE", f"sqlite:///{tmp_path / 'x.db'}")
    assert Settings().store == f"sqlite:///{tmp_path / 'x.db'}"
    assert Settings(store="sqlite:///other.db").store == "sqlite:///other.db"  # an argument wins


def test_commands_named_in_deploy_exist_in_the_cli():
    import typer.main

    from repertory.cli import app

    cli = typer.main.get_command(app)
    text = "\n".join(p.read_text() for p in DEPLOY.rglob("*") if p.is_file())
    lines = re.findall(r"'(repertory [^']+)'", text) + re.findall(r"\$\((repertory [^)]+)\)", text)
    assert lines, "deploy/ names no repertory command"
    for line in lines:
        argv = shlex.split(line)[1:]
        group = cli
        while argv and isinstance(group, type(cli)) and argv[0] in getattr(group, "commands", {}):
            group = group.commands[argv.pop(0)]
        assert not hasattr(group, "commands"), f"{line!r}: no such command"
        group.make_context(line, argv)  # raises on an unknown option or a bad value


def test_the_dockerfile_installs_existing_extras_and_copies_existing_paths():
    text = (DEPLOY / "Dockerfile").read_text()
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    (wanted,) = re.findall(r'pip install --no-cache-dir "\.\[([^\]]+)\]"', text)
    assert set(wanted.split(",")) <= extras
    for src in re.findall(r"^COPY (?:--\S+ )*(.+?) \S+$", text, re.M):
        for path in src.split():
            assert (ROOT / path).exists(), path
    package_dirs = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"].values())
    copied = {p for src in re.findall(r"^COPY (?:--\S+ )*(.+?) \S+$", text, re.M) for p in src.split()}
    assert package_dirs <= copied


def test_the_launcher_config_matches_rays_own_schema():
    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(yaml.safe_load((DEPLOY / "ray-cluster.yaml").read_text()), schema)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def configured_redis(tmp_path):
    """redis-server started from deploy/redis/redis.conf (only where it listens and writes changed)."""
    port = _free_port()
    proc = subprocess.Popen(["redis-server", str(DEPLOY / "redis" / "redis.conf"), "--port", str(port),
                             "--bind", "127.0.0.1", "--dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    import redis

    client = redis.Redis(port=port)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"redis-server refused deploy/redis/redis.conf: {proc.stdout.read().decode()}")
            time.sleep(0.05)
    yield port, client
    proc.kill()
    proc.wait()


async def test_the_redis_config_is_durable_and_never_evicts_a_session(configured_redis):
    from repertory.errors import StoreUnavailable
    from repertory.stores.base import StateWrite
    from repertory.stores.redis import RedisStore

    port, client = configured_redis
    got = {k: v for name in ("appendonly", "appendfsync", "maxmemory-policy", "notify-keyspace-events")
           for k, v in client.config_get(name).items()}
    assert got == {"appendonly": "yes", "appendfsync": "everysec", "maxmemory-policy": "noeviction",
                   "notify-keyspace-events": ""}
    store = RedisStore(f"redis://127.0.0.1:{port}/0")
    try:
        # A session with a TTL and one without: under memory pressure neither may be evicted.
        for i, ttl in enumerate((time.time() + 3600, None)):
            await store.commit(StateWrite(key=f"s{i}", expected_revision=0, meta=b"m", messages=[b"x" * 1000],
                                          updated_at=time.time(), expires_at=ttl))
        before = client.dbsize()
        client.config_set("maxmemory", client.info("memory")["used_memory"] + 64 * 1024)
        with pytest.raises(StoreUnavailable, match="out of memory"):
            for i in range(2, 10_000):
                await store.commit(StateWrite(key=f"s{i}", expected_revision=0, meta=b"m",
                                              messages=[b"y" * 10_000], updated_at=time.time()))
        assert (await store.load("s0")).messages == [b"x" * 1000]
        assert (await store.load("s1")).messages == [b"x" * 1000]
        assert client.dbsize() >= before
    finally:
        await store.close()
