"""``deploy/``: the systemd units verify, the nginx sample passes ``nginx -t`` and routes as its
comments say, the container recipe runs as non-root with its data on a volume and a health check
that touches the database. Tools that are not installed are skipped with a message.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.config import _ENV_SECRETS
from tests.fakes.live import LiveServer

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNITS = ("mofan.service", "mofan-backup.service", "mofan-backup.timer")


def _ini(path: Path) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit file (comments dropped), every value kept."""
    out: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


# systemd ------------------------------------------------------------------------------------


def test_the_service_restarts_like_ops_expect():
    unit = _ini(DEPLOY / "mofan.service")
    assert unit["Restart"] == ["always"]
    # systemd's default start limit (5 in 10 s) would give up on a crash loop otherwise.
    assert int(unit["RestartSec"][0]) >= 5
    assert unit["User"] == ["mofan"] and unit["Group"] == ["mofan"]
    assert unit["ExecStart"][0].split()[1] == "serve"
    assert any(v.lstrip("-") == "/etc/mofan/mofan.env" for v in unit["EnvironmentFile"])
    assert "MOFAN_CONFIG=/etc/mofan/mofan.toml" in unit["Environment"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "StateDirectory": "mofan",
        "CapabilityBoundingSet": "",
    }.items():
        assert unit[key] == [value], key


def test_the_backup_timer_runs_mofan_backup_nightly():
    timer = _ini(DEPLOY / "mofan-backup.timer")
    assert timer["Unit"] == ["mofan-backup.service"] and timer["Persistent"] == ["true"]
    assert timer["OnCalendar"]
    service = _ini(DEPLOY / "mofan-backup.service")
    assert service["Type"] == ["oneshot"] and service["User"] == ["mofan"]
    command = service["ExecStart"][0].split()
    assert command[1:3] == ["backup", "/var/backups/mofan/"] and "--keep" in command
    assert "/var/backups/mofan" in service["ReadWritePaths"]


def test_systemd_analyze_verifies_the_units(tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    # verify insists that ExecStart's program exists: point it at a stand-in.
    stub = tmp_path / "mofan"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    for name in UNITS:
        text = (
            (DEPLOY / name).read_text(encoding="utf-8").replace("/usr/local/bin/mofan", str(stub))
        )
        (tmp_path / name).write_text(text, encoding="utf-8")
    result = subprocess.run(
        [tool, "verify", "--man=no", *(str(tmp_path / n) for n in UNITS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Unknown keys and bad values are only warnings (exit 0): any message is a failure here.
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


# nginx --------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: cannot make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=bot.example.gov.cn",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def _nginx_prefix(tmp_path: Path, *, upstream: int, https: int, http: int) -> Path:
    """The sample inside a minimal main config, with test ports, certificate and paths."""
    cert, key = _self_signed(tmp_path)
    sample = (DEPLOY / "nginx.conf").read_text(encoding="utf-8")
    changes = {
        "/etc/nginx/tls/bot.example.gov.cn.crt": str(cert),
        "/etc/nginx/tls/bot.example.gov.cn.key": str(key),
        "/var/log/nginx/mofan.access.log": str(tmp_path / "access.log"),
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{upstream};",
        "listen 443 ssl;": f"listen 127.0.0.1:{https} ssl;",
        "listen 80;": f"listen 127.0.0.1:{http};",
    }
    for old, new in changes.items():
        assert old in sample, f"deploy/nginx.conf no longer has {old!r}"
        sample = sample.replace(old, new)
    (tmp_path / "mofan.conf").write_text(sample, encoding="utf-8")
    temp = "\n".join(
        f"  {kind}_temp_path {tmp_path / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path / 'nginx.pid'};\n"
        f"error_log {tmp_path / 'error.log'};\n"
        "daemon off;\n"
        "events {}\n"
        "http {\n"
        f"  access_log {tmp_path / 'main-access.log'};\n"
        f"{temp}\n"
        f"  include {tmp_path / 'mofan.conf'};\n"
        "}\n",
        encoding="utf-8",
    )
    return tmp_path


def _nginx() -> str:
    tool = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if tool is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx-light)")
    return tool


def test_nginx_accepts_the_sample(tmp_path):
    nginx = _nginx()
    prefix = _nginx_prefix(tmp_path, upstream=8000, https=8443, http=8080)
    result = subprocess.run(
        [nginx, "-t", "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


async def _echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A stand-in for the bot: answers with what it was sent, as uvicorn sees it."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    headers = {k.decode(): v.decode() for k, v in scope["headers"]}
    body = (
        f'{{"path": "{scope["path"]}", "scheme": "{scope["scheme"]}", '
        f'"client": "{scope["client"][0]}", "rid": "{headers.get("x-request-id", "")}"}}'
    )
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body.encode()})


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """nginx running the sample in front of a stand-in bot: (https base, http base)."""
    nginx = _nginx()
    with LiveServer(_echo) as upstream_url:
        upstream = int(upstream_url.rsplit(":", 1)[1])
        https, http = _free_port(), _free_port()
        prefix = _nginx_prefix(tmp_path, upstream=upstream, https=https, http=http)
        proc = subprocess.Popen(
            [nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", https), timeout=0.2).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        err = proc.stderr.read().decode() if proc.stderr else ""
                        pytest.fail(f"nginx did not start: {err}")
                    time.sleep(0.05)
            yield f"https://127.0.0.1:{https}", f"http://127.0.0.1:{http}"
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            if proc.stderr:
                proc.stderr.close()


def test_nginx_exposes_only_the_callback_and_forwards_the_real_scheme(proxied):
    https, http = proxied
    tls = ssl.create_default_context()
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE
    with httpx.Client(verify=tls, timeout=10, headers={"Host": "bot.example.gov.cn"}) as c:
        callback = c.get(https + "/wecom/callback", params={"echostr": "x"})
        assert callback.status_code == 200
        seen = callback.json()
        # uvicorn trusted nginx's X-Forwarded-Proto: the bot knows the request came over TLS.
        assert seen["path"] == "/wecom/callback" and seen["scheme"] == "https"
        assert re.fullmatch(r"[0-9a-f]{32}", seen["rid"])  # nginx's $request_id, passed on
        assert c.post(https + "/wecom/callback", content=b"<xml/>").status_code == 200
        assert c.put(https + "/wecom/callback", content=b"x").status_code == 403
        # Anything else is not there; health and metrics only for internal addresses
        # (this test's client is 127.0.0.1, which is internal).
        assert c.get(https + "/docs").status_code == 404
        assert c.get(https + "/").status_code == 404
        assert c.get(https + "/metrics").json()["path"] == "/metrics"
        # Plain HTTP only redirects to HTTPS.
        redirect = c.get(http + "/wecom/callback")
        assert redirect.status_code == 301
        assert redirect.headers["location"].startswith("https://bot.example.gov.cn/")


def test_nginx_keeps_metrics_and_readiness_internal():
    sample = (DEPLOY / "nginx.conf").read_text(encoding="utf-8")
    block = sample[sample.index("location ~ ^/(healthz|readyz|metrics)$") :]
    block = block[: block.index("}")]
    assert "deny all;" in block and "allow 0.0.0.0/0" not in block
    allowed = re.findall(r"allow\s+([^;]+);", block)
    assert allowed and all(
        a.startswith(("127.", "10.", "172.16.", "192.168.", "::1")) for a in allowed
    )
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in sample
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in sample


# container ----------------------------------------------------------------------------------


def _instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_the_container_runs_as_non_root_with_data_on_a_volume_and_a_db_health_check():
    steps = _instructions(DEPLOY / "Containerfile")
    final = steps[max(i for i, (w, _) in enumerate(steps) if w == "FROM") :]
    users = [rest for word, rest in final if word == "USER"]
    assert users and users[-1] not in ("root", "0") and not users[-1].startswith("0:")
    volumes = [rest for word, rest in final if word == "VOLUME"]
    assert volumes and "/data" in volumes[-1]
    assert ("WORKDIR", "/data") in final  # ./mofan.db and ./mofan.toml live in the volume
    health = [rest for word, rest in final if word == "HEALTHCHECK"]
    assert len(health) == 1 and "/readyz" in health[0]  # readiness touches the database
    assert ("ENTRYPOINT", '["mofan"]') in final
    cmd = next(rest for word, rest in final if word == "CMD")
    assert '"serve"' in cmd and '"0.0.0.0"' in cmd


def test_the_container_copies_what_the_package_is_built_from():
    steps = _instructions(DEPLOY / "Containerfile")
    copied = []
    for word, rest in steps:
        if word == "COPY" and not rest.startswith("--from"):
            copied += rest.split()[:-1]
    for path in copied:
        assert (ROOT / path).exists(), f"Containerfile copies {path}, which is not in the repo"
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    packages = re.search(r"packages = \[([^\]]*)\]", pyproject)
    assert packages is not None
    top = {p.strip().strip('"').split(".")[0] for p in packages.group(1).split(",")}
    assert top <= set(copied), f"the image would miss {top - set(copied)}"


def test_env_example_names_only_variables_the_bot_reads():
    text = (DEPLOY / "env.example").read_text(encoding="utf-8")
    named = set(re.findall(r"^#?\s*(MOFAN_[A-Z_]+)=", text, flags=re.MULTILINE))
    known = set(_ENV_SECRETS.values())
    known |= {v + "_FILE" for v in known} | {"MOFAN_CONFIG"}
    assert named and named <= known, named - known
    # The secrets themselves are left empty in the example.
    assert not re.search(r"^MOFAN_WECOM_\w+=\S", text, flags=re.MULTILINE)


def test_the_ci_wheel_check_script_parses():
    script = DEPLOY / "ci-wheel-check.sh"
    assert os.access(script, os.X_OK)
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)
