"""envmatrix/debuglog.py: an allow-list of loggers and message shapes. Records are made the way
each library makes them (same logger name, same template, same arguments), with values in every
place a library puts them: only the allow-listed, rebuilt line may come out."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import redirect_stderr

import pytest

from envmatrix import debuglog

VALUE = "CANARY-debuglog-93e1"


def record(name: str, msg: str, *args: object, level: int = logging.DEBUG) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


URLLIB3 = '%s://%s:%s "%s %s %s" %s %s'
HTTPX = 'HTTP Request: %s %s "%s %d %s"'


@pytest.fixture(autouse=True)
def origins() -> Iterator[None]:
    debuglog.configure(
        {"VAULT_ADDR": "http://127.0.0.1:8200", "GITHUB_API_URL": "http://127.0.0.1:9000"}
    )
    yield
    debuglog.configure({})


@pytest.mark.parametrize(
    ("rec", "line"),
    [
        (
            record(
                "urllib3.connectionpool",
                URLLIB3,
                "http",
                "127.0.0.1",
                8200,
                "GET",
                f"/v1/secret/data/app?version=2&x={VALUE}",
                "HTTP/1.1",
                200,
                31,
            ),
            "http: GET /v1/secret/data/app -> 200",
        ),
        (
            record(
                "urllib3.connectionpool",
                URLLIB3,
                "http",
                "127.0.0.1",
                9000,
                "PUT",
                "/repos/o/r/environments/prod/secrets/TOKEN",
                "HTTP/1.1",
                204,
                0,
            ),
            "http: PUT /repos/o/r/environments/prod/secrets/TOKEN -> 204",
        ),
        # a host envmatrix was not configured with (a Supabase project URL is a Vault value)
        (
            record(
                "urllib3.connectionpool",
                URLLIB3,
                "https",
                "proj.supabase.co",
                443,
                "GET",
                f"/{VALUE}/rest",
                "HTTP/1.1",
                200,
                5,
            ),
            "http: GET (path not shown) -> 200",
        ),
        (
            record(
                "httpx",
                HTTPX,
                "POST",
                f"http://127.0.0.1:7/{VALUE}?k={VALUE}",
                "HTTP/1.1",
                201,
                "Created",
                level=logging.INFO,
            ),
            "http: POST (path not shown) -> 201",
        ),
        (
            record(
                "httpx",
                HTTPX,
                "GET",
                "http://127.0.0.1:8200/v1/sys/health",
                "HTTP/1.1",
                200,
                "OK",
                level=logging.INFO,
            ),
            "http: GET /v1/sys/health -> 200",
        ),
    ],
)
def test_library_request_lines_are_rebuilt_from_method_path_status(
    rec: logging.LogRecord, line: str
) -> None:
    assert debuglog.shown_line(rec) == line


@pytest.mark.parametrize(
    "rec",
    [
        # botocore logs whole bodies, PyGithub headers and bodies, urllib3 and httpcore more
        record(
            "botocore.parsers", "Response body:\n%r", f"<SecretAccessKey>{VALUE}</SecretAccessKey>"
        ),
        record("botocore.endpoint", "Sending http request: %s", f"<AWSPreparedRequest {VALUE}>"),
        record("github.Requester", "%s %s %s %s ==> %s %s %s", "PUT", "/x", {}, VALUE, 201, {}, ""),
        record("urllib3.connectionpool", "Starting new HTTP connection (%d): %s:%s", 1, VALUE, 80),
        record("urllib3.util.retry", "Incremented Retry for (url='%s'): %r", f"/?t={VALUE}", None),
        record("httpcore.http11", "receive_response_headers.complete return_value=%r", VALUE),
        record("hvac.adapters", f"request to {VALUE}"),
        record(
            "urllib3.connectionpool",
            "Retrying (%r) after connection broken by '%r': %s",
            None,
            VALUE,
            VALUE,
            level=logging.WARNING,
        ),
        # the right logger but a template of its own, or arguments of the wrong shape
        record(
            "urllib3.connectionpool",
            URLLIB3 + " %s",
            "http",
            "h",
            1,
            "GET",
            "/",
            "1.1",
            200,
            0,
            VALUE,
        ),
        record(
            "urllib3.connectionpool",
            URLLIB3,
            "http",
            "127.0.0.1",
            8200,
            f"GET {VALUE}",
            "/",
            "1.1",
            200,
            0,
        ),
        record("httpx", HTTPX, "GET", "http://127.0.0.1:8200/a", "HTTP/1.1", VALUE, "OK"),
    ],
)
def test_everything_else_from_libraries_is_dropped(rec: logging.LogRecord) -> None:
    assert debuglog.shown_line(rec) is None


def test_envmatrix_loggers_are_shown_as_logged() -> None:
    assert debuglog.shown_line(record("envmatrix.sync", "planned %d changes", 3)) == (
        "envmatrix.sync: planned 3 changes"
    )
    assert debuglog.shown_line(record("envmatrix.rotation.engine", "step %s", "created")) == (
        "envmatrix.rotation.engine: step created"
    )
    assert debuglog.shown_line(record("envmatrixx", "not ours")) is None


@pytest.mark.parametrize(
    ("environ", "level"),
    [
        ({"ENVMATRIX_DEBUG": "1"}, logging.DEBUG),
        ({"ENVMATRIX_DEBUG": "yes"}, logging.DEBUG),
        ({"ENVMATRIX_DEBUG": "0"}, logging.WARNING),
        ({}, logging.WARNING),
    ],
)
def test_the_handler_writes_allowed_lines_at_the_level_asked(
    environ: dict[str, str], level: int
) -> None:
    debuglog.configure({**environ, "VAULT_ADDR": "http://127.0.0.1:8200"})
    err = io.StringIO()
    with redirect_stderr(err):
        logging.getLogger("botocore.parsers").debug("Response body: %r", VALUE)
        logging.getLogger("botocore.credentials").warning("found %s", VALUE)
        logging.getLogger("urllib3.connectionpool").debug(
            URLLIB3, "http", "127.0.0.1", 8200, "GET", "/v1/a", "HTTP/1.1", 200, 3
        )
        logging.getLogger("envmatrix.test").warning("lock held by %s", "ci")
    shown = err.getvalue()
    assert VALUE not in shown
    assert "WARNING envmatrix.test: lock held by ci" in shown
    assert ("DEBUG http: GET /v1/a -> 200" in shown) == (level == logging.DEBUG)
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, debuglog.AllowListHandler)]
    assert len(handlers) == 1  # configuring again replaces, never stacks
