"""Decoding OTLP/HTTP trace export requests (protobuf and JSON) into span rows.

The messages are ``opentelemetry-proto``'s.  OTLP's JSON encoding is protobuf's JSON
mapping with two exceptions, both handled here: trace and span ids are hex strings (not
base64), and enums may be given as integers.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from neuroflow_console.records import RecordError, Row, make_row

_KINDS = {0: "internal", 1: "internal", 2: "server", 3: "client", 4: "producer",
          5: "consumer"}
_STATUS = {0: "unset", 1: "ok", 2: "error"}
_ID_FIELDS = {"traceId", "spanId", "parentSpanId"}


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind) if kind else None


def _hex_ids_to_base64(node: Any) -> Any:
    """OTLP/JSON ids are hex; protobuf's JSON parser expects base64 for ``bytes``."""
    if isinstance(node, dict):
        out = {}
        for key, item in node.items():
            if key in _ID_FIELDS and isinstance(item, str):
                try:
                    item = base64.b64encode(bytes.fromhex(item)).decode()
                except ValueError:
                    item = ""  # an empty id: that span is rejected, the others kept
            out[key] = _hex_ids_to_base64(item)
        return out
    if isinstance(node, list):
        return [_hex_ids_to_base64(item) for item in node]
    return node


def parse_request(body: bytes, content_type: str) -> Any:
    """An ``ExportTraceServiceRequest`` from an OTLP/HTTP body.

    Raises:
        RecordError: the body is not a request of that content type.
    """
    from google.protobuf import json_format
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    if content_type.split(";")[0].strip().lower() == "application/json":
        try:
            data = _hex_ids_to_base64(json.loads(body))
            json_format.ParseDict(data, request, ignore_unknown_fields=True)
        except (ValueError, json_format.ParseError) as exc:
            raise RecordError(f"body: not an OTLP/JSON trace export request: {exc}") from None
    else:
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise RecordError(f"body: not an OTLP/protobuf trace export request: {exc}") \
                from None
    return request


def rows_from_request(request: Any) -> tuple[list[Row], int]:
    """The rows of every span of a request, and how many spans were rejected."""
    rows: list[Row] = []
    rejected = 0
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        service = resource.get("service.name", "")
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                try:
                    rows.append(make_row(
                        trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex() or None, name=span.name,
                        kind=_KINDS.get(span.kind, "internal"), service=service,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano or None,
                        status=_STATUS.get(span.status.code, "unset"),
                        status_message=span.status.message or None,
                        attributes={a.key: _value(a.value) for a in span.attributes},
                        events=[{"name": e.name, "time_unix_nano": e.time_unix_nano,
                                 "attributes": {a.key: _value(a.value)
                                                for a in e.attributes}}
                                for e in span.events]))
                except RecordError:
                    rejected += 1
    return rows, rejected
