"""compose.yaml and the Dockerfiles, checked without a Docker engine.

The end-to-end test (tests/e2e, run by .ci/run) runs the stack with whichever compose it finds,
Debian's docker-compose 1.29 here. These tests check the file against the current Compose
Specification schema, which the `docker compose` plugin implements, so that both accept it.
"""

from __future__ import annotations

import importlib.resources
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PIPELINE_SERVICES = ("pipeline", "webserver", "daemon")
_VARIABLE = re.compile(
    r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<default>[^}]*))?\})"
)
# What a deployment must set: compose refuses to start without it.
REQUIRED = {"POSTGRES_PASSWORD": "a-test-password"}


class MissingVariable(ValueError):
    """`${NAME:?message}` with NAME unset or empty, as compose reports it."""


def interpolate(value: object, environment: dict[str, str]) -> object:
    """Compose's variable substitution: `${NAME}`, `${NAME:-default}`, `${NAME-default}`,
    `${NAME:?error}`, `${NAME?error}`, `$$`."""
    if isinstance(value, dict):
        return {key: interpolate(item, environment) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, environment) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name = match["name"]
        if name is None:
            return "$"
        current = environment.get(name)
        if match["op"] == ":-" and not current:
            return match["default"]
        if match["op"] == "-" and current is None:
            return match["default"]
        if (match["op"] == ":?" and not current) or (match["op"] == "?" and current is None):
            raise MissingVariable(f"{name}: {match['default']}")
        return current or ""

    return _VARIABLE.sub(substitute, value)


def load_compose(environment: dict[str, str] | None = None) -> dict:
    raw = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    return interpolate(raw, REQUIRED if environment is None else environment)


def compose_spec_schema() -> dict:
    vendored = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads((vendored / "compose-spec.json").read_text(encoding="utf-8"))


def test_interpolation_follows_compose_rules() -> None:
    environment = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d}/${EMPTY:-d}/${UNSET:-d}", environment) == "x/d/d"
    assert interpolate("${EMPTY-d}/${UNSET-d}/${SET}/$$HOME", environment) == "/d/x/$HOME"


@pytest.mark.parametrize(
    "environment",
    [
        REQUIRED,
        {
            **REQUIRED,
            "PYTHON_IMAGE": "geotriplet-local/python:3.11-slim",
            "POSTGRES_IMAGE": "geotriplet-local/postgres:15",
            "GEOTRIPLET_BUILD_NETWORK": "host",
            "DAGSTER_WEBSERVER_PORT": "13000",
            "GEOTRIPLET_SERVICE_PORT": "18000",
        },
    ],
    ids=["defaults", "e2e-settings"],
)
def test_compose_file_is_valid_under_the_compose_specification(
    environment: dict[str, str],
) -> None:
    jsonschema.Draft202012Validator(compose_spec_schema()).validate(load_compose(environment))


def test_the_schema_rejects_what_compose_rejects() -> None:
    compose = load_compose()
    compose["services"]["service"]["healthcheck"]["retrys"] = 3
    with pytest.raises(jsonschema.ValidationError, match="retrys"):
        jsonschema.Draft202012Validator(compose_spec_schema()).validate(compose)


SLURM_SERVICES = {"slurm-controller", "slurm-node-1", "slurm-node-2"}


def test_the_stack_has_its_six_services_on_one_data_volume() -> None:
    compose = load_compose()
    services = compose["services"]
    default = {name for name, service in services.items() if "profiles" not in service}
    assert default == {"postgres", *PIPELINE_SERVICES, "service", "proxy"}
    assert set(compose["volumes"]) == {
        "geotriplet-data",
        "postgres-data",
        *("slurm-munge-key", "slurm-munge-socket", "slurm-controller-state", "slurm-accounting"),
    }
    for name in PIPELINE_SERVICES:
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
    # least privilege: only the code server, where runs execute, writes the data (and reaches
    # the SLURM controller's MUNGE socket, to submit jobs)
    assert services["pipeline"]["volumes"] == [
        "geotriplet-data:/data",
        "slurm-munge-socket:/run/munge",
    ]
    for name in ("webserver", "daemon", "service"):
        assert services[name]["volumes"] == ["geotriplet-data:/data:ro"]
    assert "volumes" not in services["proxy"]
    assert all("healthcheck" in service for name, service in services.items() if name != "proxy")
    assert services["postgres"]["image"] == "postgres:16"


def test_the_slurm_profile_adds_a_controller_and_two_nodes_on_the_data_volume() -> None:
    services = load_compose()["services"]
    slurm = {name for name, service in services.items() if "profiles" in service}
    assert slurm == SLURM_SERVICES
    for name in SLURM_SERVICES:
        service = services[name]
        assert service["profiles"] == ["slurm"]
        assert service["image"] == "geotriplet-slurm:latest"
        assert service["build"]["dockerfile"] == "docker/slurm.Dockerfile"
        assert service["hostname"] == name  # slurm.conf names the hosts
        assert "geotriplet-data:/data" in service["volumes"]
        assert "mem_limit" in service
    for node in ("slurm-node-1", "slurm-node-2"):
        assert services[node]["command"] == ["node"]
        assert "slurm-munge-key:/etc/munge:ro" in services[node]["volumes"]
        assert services[node]["depends_on"]["slurm-controller"]["condition"] == "service_healthy"
    assert "slurm-munge-socket:/run/munge" in services["slurm-controller"]["volumes"]
    slurm_conf = (ROOT / "docker" / "slurm" / "slurm.conf").read_text()
    assert "SlurmctldHost=slurm-controller" in slurm_conf
    assert "NodeName=slurm-node-[1-2]" in slurm_conf


def test_ports_listen_on_this_machine_only_and_the_service_only_through_its_proxy() -> None:
    services = load_compose()["services"]
    assert services["webserver"]["ports"] == ["127.0.0.1:3000:3000"]
    assert services["proxy"]["ports"] == ["127.0.0.1:8000:8080"]
    assert "ports" not in services["service"]
    assert services["proxy"]["environment"]["PROXY_UPSTREAM"] == "service:8000"
    exposed = load_compose({**REQUIRED, "GEOTRIPLET_BIND_ADDRESS": "0.0.0.0"})["services"]
    assert exposed["webserver"]["ports"] == ["0.0.0.0:3000:3000"]


def test_postgres_has_no_default_password_and_every_service_a_memory_limit() -> None:
    with pytest.raises(MissingVariable, match="POSTGRES_PASSWORD"):
        load_compose({})
    services = load_compose()["services"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "a-test-password"
    assert all(re.fullmatch(r"\d+[mg]", service["mem_limit"]) for service in services.values())
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    assert re.search(r"^POSTGRES_PASSWORD=$", example, re.M)


def test_dagster_reads_postgres_and_the_code_server_from_the_environment() -> None:
    environment = load_compose()["services"]["daemon"]["environment"]
    instance = yaml.safe_load((ROOT / "dagster.yaml").read_text(encoding="utf-8"))
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text(encoding="utf-8"))
    postgres = instance["storage"]["postgres"]["postgres_db"]
    for key in ("hostname", "username", "password", "db_name", "port"):
        assert postgres[key]["env"] in environment, key
    grpc = workspace["load_from"][0]["grpc_server"]
    assert {grpc["host"]["env"], grpc["port"]["env"]} <= set(environment)


@pytest.mark.parametrize(
    "dockerfile", ["pipeline.Dockerfile", "service.Dockerfile", "proxy.Dockerfile"]
)
def test_images_take_their_base_as_an_argument_run_unprivileged_and_check_health(
    dockerfile: str,
) -> None:
    text = (ROOT / "docker" / dockerfile).read_text(encoding="utf-8")
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", text, re.M)
    assert re.findall(r"^FROM (\S+)", text, re.M)[-1] == "${PYTHON_IMAGE}"
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1] not in {"root", "0"}
    assert re.search(r"^HEALTHCHECK ", text, re.M)


def test_the_pipeline_image_selects_cpu_only_torch_by_default() -> None:
    text = (ROOT / "docker" / "pipeline.Dockerfile").read_text(encoding="utf-8")
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in text
    assert load_compose()["x-pipeline-build"]["args"]["TORCH_INDEX_URL"].endswith("/whl/cpu")


def test_the_build_context_leaves_out_data_and_virtualenvs() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "the context is an allow-list"
    included = {line[1:].strip("/") for line in lines if line.startswith("!")}
    assert {"geotriplet_assets", "service", "pyproject.toml", "docker"} <= included
    assert not included & {"data", ".venv", ".git", "build", "tests"}
