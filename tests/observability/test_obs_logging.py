"""StructuredLogger: one JSON object per line, fields, trace ids and exceptions."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from neuroflow.errors import ConfigError
from neuroflow.observability import (
    JsonFormatter,
    StructuredLogger,
    TracingService,
    configure_logging,
)

LOGGER = "neuroflow.test_obs"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """JSON log lines of the test logger, written to a string buffer."""
    out = io.StringIO()
    handler = configure_logging("debug", out, logger=LOGGER)
    yield out
    logging.getLogger(LOGGER).removeHandler(handler)
    logging.getLogger(LOGGER).setLevel(logging.NOTSET)


def records(out: io.StringIO) -> list[dict]:
    """Every line written so far, parsed."""
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_spec_example_info(stream: io.StringIO) -> None:
    logger = StructuredLogger(LOGGER)
    logger.info("Request received", request_id="123", method="GET")
    (record,) = records(stream)
    assert set(record) == {"timestamp", "level", "logger", "message", "fields"}
    assert record["level"] == "INFO" and record["logger"] == LOGGER
    assert record["message"] == "Request received"
    assert record["fields"] == {"request_id": "123", "method": "GET"}
    assert record["timestamp"].endswith("Z") and "T" in record["timestamp"]


def test_spec_example_error_with_exception(stream: io.StringIO) -> None:
    logger = StructuredLogger(LOGGER)

    def execute_tool() -> None:
        raise TimeoutError("tool took too long")

    try:
        execute_tool()
    except TimeoutError as e:
        logger.error("Request failed", exc_info=e, request_id="123")
    (record,) = records(stream)
    assert record["level"] == "ERROR"
    assert record["fields"] == {"request_id": "123"}
    assert record["exception"]["type"] == "TimeoutError"
    assert record["exception"]["message"] == "tool took too long"
    assert "in execute_tool" in record["exception"]["traceback"]


def test_exception_method_and_exc_info_true(stream: io.StringIO) -> None:
    logger = StructuredLogger(LOGGER)
    try:
        {}["missing"]
    except KeyError:
        logger.exception("lookup failed", key="missing")
        logger.warning("again", exc_info=True)
    first, second = records(stream)
    assert first["exception"]["type"] == second["exception"]["type"] == "KeyError"
    assert second["level"] == "WARNING"


def test_records_inside_a_span_carry_its_ids(stream: io.StringIO) -> None:
    tracing = TracingService("svc")
    logger = StructuredLogger(LOGGER)
    with tracing.span("outer") as outer:
        logger.info("in outer")
        with tracing.span("inner") as inner:
            logging.getLogger(LOGGER).info("plain %s logger", "stdlib")
    logger.info("outside")
    in_outer, plain, outside = records(stream)
    assert (in_outer["trace_id"], in_outer["span_id"]) == (outer.trace_id, outer.span_id)
    assert (plain["trace_id"], plain["span_id"]) == (inner.trace_id, inner.span_id)
    assert plain["message"] == "plain stdlib logger" and plain["fields"] == {}
    assert "trace_id" not in outside and "span_id" not in outside


def test_bound_fields_levels_and_odd_values(stream: io.StringIO) -> None:
    logger = StructuredLogger(LOGGER).bind(agent="researcher")
    logger.debug("step", n=1, path=__import__("pathlib").Path("/tmp/x"), text="naïve")
    configure_logging("warning", stream, logger=LOGGER)  # replaces, does not duplicate
    logger.info("hidden")
    logger.critical("shown", n=2, msg="fields may use any name", name="x")
    first, second = records(stream)
    assert first["fields"] == {"agent": "researcher", "n": 1, "path": "/tmp/x", "text": "naïve"}
    assert second["fields"] == {
        "agent": "researcher", "n": 2, "msg": "fields may use any name", "name": "x"
    }
    assert second["message"] == "shown"
    assert second["level"] == "CRITICAL"
    assert len(logging.getLogger(LOGGER).handlers) == 1


def test_formatter_on_a_plain_handler() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %d", (5,), None)
    handler.emit(record)
    assert json.loads(out.getvalue())["message"] == "hello 5"


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="level: expected one of debug, info"):
        configure_logging("loud", io.StringIO(), logger=LOGGER)
    with pytest.raises(ConfigError, match="name: expected a logger name string"):
        StructuredLogger(3)  # type: ignore[arg-type]
