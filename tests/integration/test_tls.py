"""The API over TLS, with a certificate the test makes itself."""

import shutil
import subprocess

import httpx
import pytest
from farm import Farm


@pytest.mark.skipif(
    shutil.which("openssl") is None, reason="openssl is needed to make a certificate"
)
def test_api_serves_https_when_configured_and_clients_verify_it(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    farm = Farm(tmp_path / "farm", tls_cert=cert, tls_key=key)
    try:
        farm.start_master()
        assert farm.client.url.startswith("https://")
        assert farm.client.farm()["engines"] == 0
        assert farm.cli("jobs", "--all", check=True).stdout.strip() == "no jobs"
        plain = farm.client.url.replace("https://", "http://")
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{plain}/api/v1/health", timeout=5)
        with pytest.raises(httpx.HTTPError):  # an unknown certificate is refused, not trusted
            httpx.get(f"{farm.client.url}/api/v1/health", timeout=5)
    finally:
        farm.stop()
