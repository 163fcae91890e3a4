"""deploy/compose/compose.yaml: with `docker compose` installed, `docker compose config` checks it; without
(this machine has the docker client but no compose plugin), it is validated against the Compose
Specification's JSON schema, vendored as deploy/compose/compose-spec.schema.json (compose-spec/compose-spec,
schema/compose-spec.json at 170098ba, Apache License 2.0; never downloaded at test time). Then the shapes:
a service per role, a worker per queue, migrations once as the owner role before anything runs, Redis with
a password; the first-start roles script run against a PostgreSQL of the test's own; the image's sources."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml
from django.conf import settings

from tests.deploy.servers import own_postgres, postgres_bin

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose" / "compose.yaml"
SCHEMA = ROOT / "deploy" / "compose" / "compose-spec.schema.json"
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"


def _docker_compose() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    return None


def _example_env() -> dict[str, str]:
    lines = (ROOT / "deploy" / "compose" / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_the_compose_file_is_valid(compose):
    command = _docker_compose()
    if command is not None:
        subprocess.run([*command, "-f", str(COMPOSE), "config", "--quiet"], check=True,
                       env={**os.environ, **_example_env()})
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    assert not [error.message for error in validator.iter_errors(compose)]
    # The schema does catch mistakes (a misspelt key in a service).
    broken = {**compose, "services": {**compose["services"], "web": {**compose["services"]["web"], "comand": []}}}
    assert list(validator.iter_errors(broken))


def test_every_role_runs_and_migrations_come_first_as_the_owner(compose):
    services = compose["services"]
    queues = {settings.CELERY_TASK_DEFAULT_QUEUE} | {r["queue"] for r in settings.CELERY_TASK_ROUTES.values()}
    assert {"postgres", "redis", "migrate", "web", "beat", "proxy"} | {f"worker-{q}" for q in queues} <= set(services)
    for queue in queues:
        command = services[f"worker-{queue}"]["command"]
        assert command[command.index("-Q") + 1] == queue
    assert services["web"]["command"] == ["gunicorn", "-c", "config/gunicorn.py"]
    assert services["migrate"]["environment"]["DATABASE_URL"].startswith("postgres://recsvc_owner:")
    assert services["migrate"]["restart"] == "no"
    for name, service in services.items():
        if name.startswith(("worker-", "web", "beat")):
            assert service["environment"]["DATABASE_URL"].startswith("postgres://recsvc:"), name
            assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
    assert "--requirepass" in " ".join(services["redis"]["command"])
    assert re.match(r"redis://:\$\{REDIS_PASSWORD", services["web"]["environment"]["REDIS_URL"])
    template = services["proxy"]["volumes"][0].split(":")[0]
    assert (COMPOSE.parent / template).resolve() == ROOT / "deploy" / "nginx" / "recsvc.conf.template"
    assert (ROOT / services["web"]["build"]["context"].replace("../..", ".") / "deploy/docker/Dockerfile").exists()


@pytest.mark.skipif(postgres_bin() is None, reason="no PostgreSQL binaries under /usr/lib/postgresql")
def test_the_first_start_script_makes_the_roles_of_adr_0013():
    with own_postgres() as server:
        env = {**os.environ, "PATH": f"{postgres_bin()}:{os.environ['PATH']}", "PGHOST": "127.0.0.1",
               "PGPORT": str(server.port), "RECSVC_OWNER_PASSWORD": "owner-pw", "RECSVC_DB_PASSWORD": "app-pw"}
        subprocess.run(["sh", str(ROOT / "deploy/compose/initdb/10-roles.sh")], check=True, env=env,
                       capture_output=True)
        roles = server.psql("SELECT rolname, rolcanlogin, rolsuper, rolbypassrls FROM pg_roles"
                            " WHERE rolname LIKE 'recsvc%' ORDER BY 1")
        assert roles.split() == ["recsvc|t|f|f", "recsvc_maintenance|f|f|f", "recsvc_owner|t|f|f"]
        assert server.psql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'recsvc'").strip() \
            == "recsvc_owner"


def test_the_image_copies_every_package_of_the_project():
    copied = set(re.findall(r"^COPY (\S+) \./", DOCKERFILE.read_text(), flags=re.M))
    packages = {p.rstrip("*") for p in re.findall(r'"(\w+)\*"', (ROOT / "pyproject.toml").read_text())}
    assert packages and packages <= copied
    assert {"templates", "manage.py"} <= copied
    for source in copied:
        assert (ROOT / source).exists(), source
