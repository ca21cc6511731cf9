"""/openapi.json describes the whole API: every route its request model, its answer's model and
the error answers it may give, each with the error body {"detail", "error"} (issue 13)."""

from __future__ import annotations

import pytest
from _api import in_process_api

#: Routes open without a token (nothing to refuse, no store to wait for).
OPEN = {("get", "/api/v1/health")}
#: Routes whose path names nothing that must exist (a slave heartbeats before it is known).
NAMES_NOTHING_STORED = {"/api/v1/slaves/{name}/heartbeat"}
#: The error body every error answer has.
ERROR_BODY = "#/components/schemas/ErrorBody"


@pytest.fixture(scope="module")
def schema(tmp_path_factory):
    with in_process_api(tmp_path_factory.mktemp("openapi")) as (http, _):
        answer = http.get("/openapi.json")
        assert answer.status_code == 200
        return answer.json()


def operations(schema):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield method, path, operation


def success(operation) -> tuple[str, dict]:
    codes = [code for code in operation["responses"] if code.startswith("2")]
    assert len(codes) >= 1
    return codes[0], operation["responses"][codes[0]]


def test_every_route_documents_the_model_of_its_answer(schema):
    lacking = []
    for method, path, operation in operations(schema):
        code, answer = success(operation)
        if code == "204":
            continue
        schemas = [media.get("schema") for media in answer.get("content", {}).values()]
        if not schemas or not all(schemas) or schemas == [{"type": "object"}]:
            lacking.append(f"{method.upper()} {path}")
            continue
        if "application/json" in answer["content"] and path != "/api/v1/farm/engine-connection":
            json_schema = answer["content"]["application/json"]["schema"]
            ref = json_schema.get("$ref") or json_schema.get("items", {}).get("$ref")
            if not ref:
                lacking.append(f"{method.upper()} {path} (no model)")
    assert lacking == []


def test_every_route_with_a_body_documents_its_request_model_and_its_size_limit(schema):
    for method, path, operation in operations(schema):
        if "requestBody" not in operation:
            continue
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert "$ref" in body, f"{method.upper()} {path}"
        assert {"413", "422"} <= set(operation["responses"]), f"{method.upper()} {path}"


def test_every_route_documents_its_error_answers_with_the_error_body(schema):
    for method, path, operation in operations(schema):
        where = f"{method.upper()} {path}"
        errors = {code: a for code, a in operation["responses"].items() if code[0] in "45"}
        if (method, path) in OPEN:
            continue
        assert {"401", "403", "422", "503"} <= set(errors), where
        if "{" in path and path not in NAMES_NOTHING_STORED:
            assert "404" in errors, where
        for code, answer in errors.items():
            assert answer["content"]["application/json"]["schema"]["$ref"] == ERROR_BODY, (
                where,
                code,
            )
            assert answer["description"], (where, code)


def test_the_error_body_and_the_typed_objects_are_in_the_schema(schema):
    components = schema["components"]["schemas"]
    assert set(components["ErrorBody"]["required"]) == {"detail", "error"}
    for name in ("Job", "Task", "Computer", "Pool", "Event", "Submitted", "Counts", "JobIn"):
        assert name in components, name
    assert "HTTPValidationError" not in components  # our 422 has the error body too
