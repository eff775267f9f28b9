"""The cluster deployment files (infra/deploy) are valid and agree with the code.

Schemas: the Compose Specification's JSON schema (vendored by check-jsonschema) and the Kubernetes
OpenAPI schemas (kubernetes-validate, strict: unknown fields are errors). On top, what no schema knows:
every REEL_* variable is a field of infra.settings.Settings and parses there, every depends_on /
Service / selector / secret reference points at something that exists, the commands the containers
run exist in this environment, and the image pins agree. Each check is shown to catch a broken copy.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from importlib import resources
from importlib.metadata import requires
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from pydantic import ValidationError

from infra.settings import Settings
from tests.s3server import moto_on_loopback

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "infra" / "deploy"
K8S = DEPLOY / "k8s"
BIN = Path(sys.executable).parent
K8S_VERSION = "1.33"  # oldest Kubernetes the manifests are checked against
REEL_IMAGE_COMMANDS = {"reel", "dask", "prefect", "python"}  # what the Reel image's containers may run

# ---------------------------------------------------------------------------------------------------
# loading


def load_compose(path: Path = DEPLOY / "compose.yaml") -> dict:
    return yaml.safe_load(path.read_text())  # safe_load resolves the `<<: *anchor` merges


def load_k8s() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return docs


_VAR = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error}; a required variable gets a placeholder."""
    def one(m: re.Match) -> str:
        name, op, arg = m.groups()
        if env.get(name):
            return env[name]
        return arg if op in (":-", "-") else f"placeholder-{name.lower()}"
    return _VAR.sub(one, value)


def env_example() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (DEPLOY / ".env.example").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def settings_problems(where: str, env: dict[str, str]) -> list[str]:
    """REEL_* variables that are not Settings fields, or whose values Settings refuses."""
    problems, values = [], {}
    for name, value in env.items():
        if not name.startswith("REEL_"):
            continue
        field = name.removeprefix("REEL_").lower()
        if field not in Settings.model_fields:
            problems.append(f"{where}: {name} is not a setting (infra/settings.py has no field {field!r})")
        else:
            values[field] = value
    try:
        Settings(_env_file=None, **values)
    except ValidationError as e:
        problems.append(f"{where}: the settings do not parse: {e.errors()[0]['loc']}: {e.errors()[0]['msg']}")
    return problems


def leading_words(argv: list[str]) -> list[str]:
    """The program and its subcommands: `dask worker tcp://...` -> [dask, worker]."""
    words = [argv[0]]
    for arg in argv[1:]:
        if not re.fullmatch(r"[a-z][a-z-]*", arg):
            break
        words.append(arg)
    return words


def service_host(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url if "://" in url else f"tcp://{url}")
    return parts.hostname or "", parts.port


# ---------------------------------------------------------------------------------------------------
# validators (return a list of problems; tests assert it is empty, and non-empty for a broken copy)


def compose_schema_problems(doc: dict) -> list[str]:
    schema = json.loads(resources.files("check_jsonschema.builtin_schemas.vendor")
                        .joinpath("compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def compose_problems(doc: dict, env: dict[str, str] | None = None) -> list[str]:
    env = env_example() if env is None else env
    problems = []
    services: dict[str, dict] = doc.get("services", {})
    published: dict[str, str] = {}
    for name, svc in services.items():
        if "image" not in svc and "build" not in svc:
            problems.append(f"{name}: neither image nor build")
        image = interpolate(str(svc.get("image", "")), {})
        if image and (":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")):
            problems.append(f"{name}: image {image!r} is not pinned to a version")
        deps = svc.get("depends_on", {})
        for dep, cond in (deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps)):
            if dep not in services:
                problems.append(f"{name}: depends on {dep!r}, which is not a service")
                continue
            condition = (cond or {}).get("condition", "service_started")
            if condition == "service_healthy" and "healthcheck" not in services[dep]:
                problems.append(f"{name}: waits for {dep!r} to be healthy, but it has no healthcheck")
            if condition == "service_completed_successfully" and services[dep].get("restart", "no") != "no":
                problems.append(f"{name}: waits for {dep!r} to complete, but it restarts")
        for port in svc.get("ports", []):
            host = ":".join(str(port).split(":")[:-1])
            if host in published:
                problems.append(f"{name}: host port {host} is also published by {published[host]}")
            published[host] = name
        environment = {k: interpolate(str(v), env) for k, v in (svc.get("environment") or {}).items()}
        problems += settings_problems(name, environment)
        for var in ("REEL_DASK_ADDRESS", "REEL_S3_ENDPOINT", "PREFECT_API_URL"):
            if var in environment and service_host(environment[var])[0] not in services:
                problems.append(f"{name}: {var} names host {service_host(environment[var])[0]!r}, not a service")
        problems += command_shape_problems(name, svc.get("command"))
    # the workers run the tasks: they must see exactly the settings the serve process sees
    serve, workers = services.get("reel", {}), services.get("dask-worker", {})
    shared = {k for k in (serve.get("environment") or {}) if k.startswith(("REEL_", "PREFECT_"))}
    for key in shared:
        if (workers.get("environment") or {}).get(key) != serve["environment"][key]:
            problems.append(f"dask-worker: {key} differs from the reel service's")
    return problems


def command_shape_problems(where: str, command) -> list[str]:
    if command is None:
        return []
    if not isinstance(command, list) or not command:
        return [f"{where}: command should be a non-empty exec-form list, got {command!r}"]
    return []


def k8s_schema_problems(docs: list[dict]) -> list[str]:
    problems = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            problems.append(f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}: "
                            f"{'.'.join(map(str, e.path))}: {e.message}")
    return problems


def pod_spec(doc: dict) -> dict | None:
    if doc.get("kind") in ("Deployment", "StatefulSet", "Job", "DaemonSet"):
        return doc["spec"]["template"]["spec"]
    return None


def k8s_problems(docs: list[dict]) -> list[str]:
    problems = []
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    namespaces = {d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"}
    workload_labels = []
    for d in docs:
        where = f"{d['kind']}/{d['metadata']['name']}"
        if d["kind"] != "Namespace" and d["metadata"].get("namespace") not in namespaces:
            problems.append(f"{where}: namespace {d['metadata'].get('namespace')!r} is not defined here")
        if d["kind"] == "ConfigMap":
            problems += settings_problems(where, d.get("data", {}))
        if d["kind"] == "Secret":
            for key in d.get("stringData", {}):
                if key.startswith("REEL_"):
                    problems += settings_problems(where, {key: "x"})
        spec = pod_spec(d)
        if spec is None:
            continue
        labels = d["spec"]["template"]["metadata"].get("labels", {})
        selector = d["spec"].get("selector", {}).get("matchLabels", {})
        if not selector or any(labels.get(k) != v for k, v in selector.items()):
            problems.append(f"{where}: selector {selector} does not match the pod labels {labels}")
        workload_labels.append(labels)
        if d["kind"] == "StatefulSet" and ("Service", d["spec"].get("serviceName")) not in names:
            problems.append(f"{where}: serviceName {d['spec'].get('serviceName')!r} is not a Service here")
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            cwhere = f"{where}/{c['name']}"
            for src in c.get("envFrom", []):
                for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                    if key in src and (kind, src[key]["name"]) not in names:
                        problems.append(f"{cwhere}: envFrom {kind} {src[key]['name']!r} is not defined here")
            env = {}
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    secret = next((s for s in docs if s["kind"] == "Secret" and s["metadata"]["name"] == ref["name"]),
                                  None)
                    if secret is None or ref["key"] not in secret.get("stringData", {}):
                        problems.append(f"{cwhere}: secret key {ref['name']}/{ref['key']} is not defined here")
                env[e["name"]] = e.get("value", "x")
            problems += settings_problems(cwhere, {k: v for k, v in env.items() if "$(" not in v})
            problems += command_shape_problems(cwhere, c.get("command"))
    for d in docs:
        if d["kind"] != "Service":
            continue
        sel = d["spec"].get("selector", {})
        if not any(sel and all(labels.get(k) == v for k, v in sel.items()) for labels in workload_labels):
            problems.append(f"Service/{d['metadata']['name']}: selector {sel} matches no workload here")
    # addresses in the settings name Services (and their ports) defined here
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    for d in docs:
        if d["kind"] != "ConfigMap":
            continue
        for var in ("REEL_DASK_ADDRESS", "REEL_S3_ENDPOINT", "PREFECT_API_URL"):
            if var not in d["data"]:
                continue
            host, port = service_host(d["data"][var])
            svc = services.get(host.split(".")[0])
            if svc is None:
                problems.append(f"ConfigMap/{d['metadata']['name']}: {var} names {host!r}, not a Service here")
            elif port not in {p["port"] for p in svc["spec"]["ports"]}:
                problems.append(f"ConfigMap/{d['metadata']['name']}: {var} port {port} is not a port of {host!r}")
    return problems


def container_commands() -> set[tuple[str, ...]]:
    """The program + subcommands every Reel-image container runs, from compose and the manifests."""
    argvs = [svc["command"] for svc in load_compose()["services"].values() if isinstance(svc.get("command"), list)]
    argvs += [svc["healthcheck"]["test"][1:] for svc in load_compose()["services"].values()
              if svc.get("healthcheck", {}).get("test", [""])[0] == "CMD"]
    for d in load_k8s():
        spec = pod_spec(d)
        for c in (spec or {}).get("initContainers", []) + (spec or {}).get("containers", []):
            argvs += [c[k] for k in ("command",) if k in c]
            argvs += [p["exec"]["command"] for p in (c.get("readinessProbe"), c.get("livenessProbe"))
                      if p and "exec" in p]
    return {tuple(leading_words([interpolate(a, {}) for a in argv])) for argv in argvs
            if argv and argv[0] in REEL_IMAGE_COMMANDS - {"python"}}


def failing_commands(commands: set[tuple[str, ...]]) -> dict[str, object]:
    """{command: last stderr line} for each command whose `--help` fails in this environment (run in parallel)."""
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    procs = {cmd: subprocess.Popen([str(BIN / cmd[0]), *cmd[1:], "--help"], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True, env=env)
             for cmd in sorted(commands)}
    failed: dict[str, object] = {}
    for cmd, proc in procs.items():
        _, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            failed[" ".join(cmd)] = err.strip().splitlines()[-1] if err.strip() else proc.returncode
    return failed


# ---------------------------------------------------------------------------------------------------
# the files as they are


def test_compose_file_follows_the_compose_spec():
    assert compose_schema_problems(load_compose()) == []


def test_compose_file_agrees_with_the_code():
    doc = load_compose()
    assert {"postgres", "prefect-server", "minio", "dask-scheduler", "dask-worker", "reel"} <= set(doc["services"])
    assert doc["services"]["dask-worker"]["deploy"]["replicas"] == 2
    assert compose_problems(doc) == []


def test_env_example_holds_placeholders_only():
    values = env_example()
    assert {"POSTGRES_PASSWORD", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"} <= set(values)
    assert all("change-me" in v for v in values.values()), values
    # and every variable the compose file requires is in the example
    required = set(re.findall(r"\$\{(\w+):\?", (DEPLOY / "compose.yaml").read_text()))
    assert required <= set(values)


def test_k8s_manifests_follow_the_kubernetes_schema():
    docs = load_k8s()
    kinds = sorted(d["kind"] for d in docs)
    assert kinds.count("StatefulSet") == 2 and kinds.count("Deployment") == 4 and "Namespace" in kinds
    assert k8s_schema_problems(docs) == []


def test_k8s_manifests_agree_with_each_other_and_the_code():
    docs = load_k8s()
    workers = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "dask-worker")
    assert workers["spec"]["replicas"] == 2
    assert k8s_problems(docs) == []


def test_kustomization_lists_every_manifest_but_the_secret_template():
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert sorted(listed) == sorted(files)


def test_secret_template_holds_placeholders_only():
    for doc in yaml.safe_load_all((K8S / "secret.example.yaml").read_text()):
        assert set(doc["stringData"].values()) == {"CHANGE-ME"}, doc["metadata"]["name"]


def test_image_pins_agree():
    """Prefect server image = the prefect the Reel image installs; those pins satisfy pyproject."""
    pins = dict(line.split("==") for line in (DEPLOY / "image-constraints.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    server_tags = {svc["image"] for svc in load_compose()["services"].values() if "prefecthq/prefect" in svc.get("image", "")}
    server_tags |= {c["image"] for d in load_k8s() for c in (pod_spec(d) or {}).get("containers", [])
                    if "prefecthq/prefect" in c["image"]}
    assert server_tags == {f"prefecthq/prefect:{pins['prefect']}-python3.11"}
    for text in requires("reel"):
        req = Requirement(text)
        if req.marker is None and canonicalize_name(req.name) in pins:
            assert req.specifier.contains(pins[canonicalize_name(req.name)]), (req, pins[canonicalize_name(req.name)])
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "-c constraints.txt -c infra/deploy/image-constraints.txt ." in dockerfile
    # the image's Python is the one the tests run on (same major.minor)
    assert f"python:{sys.version_info.major}.{sys.version_info.minor}-slim" in dockerfile


def test_image_workers_keep_glibc_malloc_defaults():
    """The image's Dask config (infra/deploy/dask.yaml, copied to /etc/dask/) removes the nanny's
    MALLOC_TRIM_THRESHOLD_ from the workers' environment, as infra/cluster.py does on a laptop."""
    import dask
    from distributed.nanny import _get_env_variables

    key = "distributed.nanny.pre-spawn-environ"
    shipped = yaml.safe_load((DEPLOY / "dask.yaml").read_text())
    with dask.config.set({key: {"MALLOC_TRIM_THRESHOLD_": 65536, "OMP_NUM_THREADS": 1}}):
        assert "MALLOC_TRIM_THRESHOLD_" in _get_env_variables(key)  # Dask's default does set it
        merged = dask.config.update(copy.deepcopy(dask.config.get(key)), shipped["distributed"]["nanny"]["pre-spawn-environ"])
        with dask.config.set({key: merged}):
            env = _get_env_variables(key)
    assert "MALLOC_TRIM_THRESHOLD_" not in env and env["OMP_NUM_THREADS"] == "1"
    assert "COPY infra/deploy/dask.yaml /etc/dask/reel.yaml" in (DEPLOY / "Dockerfile").read_text()


def test_the_commands_the_containers_run_exist_here():
    """`reel serve`, `prefect server start`, `dask scheduler`, `dask worker`, ...: `--help` succeeds."""
    commands = container_commands()
    assert {("reel", "serve"), ("prefect", "server", "start"), ("dask", "scheduler"), ("dask", "worker")} <= commands
    assert failing_commands(commands) == {}


def test_store_init_command_creates_the_bucket_on_a_real_s3_server(tmp_path):
    """The one-shot s3-init command (compose service, k8s initContainer) against a real S3 server."""
    compose_cmd = load_compose()["services"]["s3-init"]["command"]
    reel = next(d for d in load_k8s() if d["kind"] == "Deployment" and d["metadata"]["name"] == "reel")
    assert reel["spec"]["template"]["spec"]["initContainers"][0]["command"] == compose_cmd
    from minio import Minio

    with moto_on_loopback() as endpoint:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REEL_")}
        env.update(REEL_STORE="s3://fresh-bucket/reel", REEL_S3_ENDPOINT=endpoint, REEL_S3_ACCESS_KEY="k",
                   REEL_S3_SECRET_KEY="s", REEL_S3_CREATE_BUCKET="true")
        done = subprocess.run([str(BIN / compose_cmd[0]), *compose_cmd[1:]], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert Minio(endpoint, access_key="k", secret_key="s", secure=False).bucket_exists("fresh-bucket")


def test_healthcheck_one_liners_compile():
    for name, svc in load_compose()["services"].items():
        test = svc.get("healthcheck", {}).get("test", [])
        if test[1:3] == ["python", "-c"]:
            compile(test[3], f"{name} healthcheck", "exec")


# ---------------------------------------------------------------------------------------------------
# the validators catch broken copies


def _break_compose(doc: dict, how: str) -> None:
    s = doc["services"]
    if how == "no image":
        s["postgres"].pop("image")
    elif how == "unknown dependency":
        s["reel"]["depends_on"]["dask-schedulr"] = {"condition": "service_started"}
    elif how == "healthy without healthcheck":
        s["dask-scheduler"].pop("healthcheck")
    elif how == "unknown setting":
        s["reel"]["environment"]["REEL_DASK_ADRESS"] = "tcp://dask-scheduler:8786"
    elif how == "setting that does not parse":
        s["reel"]["environment"]["REEL_SWEEP_MAX_CONCURRENT"] = "many"
    elif how == "duplicate host port":
        s["minio"]["ports"].append("127.0.0.1:4200:9000")
    elif how == "unpinned image":
        s["postgres"]["image"] = "postgres"
    elif how == "address of a missing service":
        s["reel"]["environment"]["REEL_S3_ENDPOINT"] = "s3:9000"
    elif how == "worker settings differ":
        s["dask-worker"]["environment"] = {**s["dask-worker"]["environment"], "REEL_STORE": "s3://other/x"}
    elif how == "shell-form command":
        s["dask-worker"]["command"] = "dask worker tcp://dask-scheduler:8786"


@pytest.mark.parametrize("how", ["no image", "unknown dependency", "healthy without healthcheck", "unknown setting",
                                 "setting that does not parse", "duplicate host port", "unpinned image",
                                 "address of a missing service", "worker settings differ", "shell-form command"])
def test_compose_checks_catch(how):
    doc = load_compose()
    _break_compose(doc, how)
    assert compose_problems(doc), how


@pytest.mark.parametrize("how", ["misspelt key", "unknown depends_on condition", "list as text"])
def test_compose_schema_catches(how):
    doc = load_compose()
    svc = doc["services"]["reel"]
    if how == "misspelt key":
        svc["environmnet"] = svc.pop("environment")
    elif how == "unknown depends_on condition":
        svc["depends_on"]["dask-scheduler"]["condition"] = "service_ready"
    elif how == "list as text":
        doc["services"]["minio"]["volumes"] = "minio-data:/data"
    assert compose_schema_problems(doc), how


def _break_k8s(docs: list[dict], how: str) -> list[dict]:
    docs = copy.deepcopy(docs)
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    if how == "selector mismatch":
        by[("Deployment", "dask-worker")]["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] = "worker"
    elif how == "service selects nothing":
        by[("Service", "minio")]["spec"]["selector"] = {"app.kubernetes.io/name": "mini0"}
    elif how == "unknown setting":
        by[("ConfigMap", "reel-settings")]["data"]["REEL_SWEEP_CRONN"] = "0 * * * *"
    elif how == "missing configmap":
        by[("Deployment", "reel")]["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["configMapRef"][
            "name"] = "reel-setting"
    elif how == "missing secret key":
        env = by[("StatefulSet", "postgres")]["spec"]["template"]["spec"]["containers"][0]["env"]
        next(e for e in env if "valueFrom" in e)["valueFrom"]["secretKeyRef"]["key"] = "PASSWORD"
    elif how == "address of a missing service":
        by[("ConfigMap", "reel-settings")]["data"]["REEL_DASK_ADDRESS"] = "tcp://scheduler.reel.svc.cluster.local:8786"
    elif how == "wrong port":
        by[("ConfigMap", "reel-settings")]["data"]["PREFECT_API_URL"] = "http://prefect-server.reel:4201/api"
    return docs


@pytest.mark.parametrize("how", ["selector mismatch", "service selects nothing", "unknown setting",
                                 "missing configmap", "missing secret key", "address of a missing service",
                                 "wrong port"])
def test_k8s_checks_catch(how):
    assert k8s_problems(_break_k8s(load_k8s(), how)), how


@pytest.mark.parametrize("how", ["unknown field", "port as text", "missing selector"])
def test_k8s_schema_catches(how):
    docs = copy.deepcopy(load_k8s())
    dep = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "reel")
    container = dep["spec"]["template"]["spec"]["containers"][0]
    if how == "unknown field":
        container["enviroment"] = []
    elif how == "port as text":
        container["ports"] = [{"containerPort": "http"}]
    elif how == "missing selector":
        dep["spec"].pop("selector")
    assert k8s_schema_problems([dep]), how


def test_command_check_catches_a_missing_subcommand():
    assert set(failing_commands({("dask", "schedulerr"), ("dask", "worker")})) == {"dask schedulerr"}
