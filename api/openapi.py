"""PURE: the OpenAPI 3.1 document of the API, served at /openapi.json and rendered at /docs."""

from __future__ import annotations

from typing import Any

from api import audit, patients

JSON = "application/json"
ERROR_CODES = (
    "MALFORMED_JSON",
    "INVALID_BODY",
    "VALIDATION_ERROR",
    "INVALID_QUERY",
    "LIST_TOO_LARGE",
    "NOT_FOUND",
    "METHOD_NOT_ALLOWED",
    "DUPLICATE_ID",
    "DUPLICATE_PATIENT_ID",
    "PRECONDITION_FAILED",
    "PAYLOAD_TOO_LARGE",
    "UNSUPPORTED_MEDIA_TYPE",
    "INTERNAL_ERROR",
    "DATABASE_UNAVAILABLE",
    "DATABASE_BUSY",
    "URI_TOO_LONG",
    "HEADERS_TOO_LARGE",
    "HTTP_ERROR",
    "CLIENT_DISCONNECTED",
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "IDENTITY_PROVIDER_UNAVAILABLE",
    "IMPORT_RUNNING",
    "SERVER_BUSY",
    "CONFLICT",
)
ERRORS = {
    "400": (
        "Malformed JSON, a body that is not an object, an invalid field or query,"
        " or a list longer than LIST_MEMORY_MB holds"
    ),
    "401": "No valid bearer token (AUTH_MODE=entra); see WWW-Authenticate",
    "403": "The token lacks the scope or role, or the caller is not an administrator",
    "404": "No such patient or user",
    "409": "The id or patientID is taken",
    "412": "If-Match does not match the stored record",
    "413": "The body is larger than MAX_BODY_BYTES",
    "415": "The body is not application/json",
    "500": "A bug; the body has a request_id, never internals",
    "503": "PostgreSQL or the identity provider's keys cannot be reached; retry after Retry-After",
}
QUERY_PARAMETERS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("q", "Case-insensitive substring over every value, nested ones included", {}),
    ("_sort", "Comma-separated fields (dotted paths allowed), e.g. `gender,age`", {}),
    ("_order", "Comma-separated `asc`/`desc`, matched to `_sort` by position", {}),
    ("_page", "1-based page; adds X-Total-Count and Link", {}),
    ("_limit", "Page size (default 10 with `_page`) or slice length", {}),
    ("_start", "Slice start, with `_end` or `_limit` (negative counts from the end)", {}),
    ("_end", "Slice end (negative counts from the end)", {}),
)


SECURITY_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": (
        "A Microsoft Entra ID access token for this API (MSAL scope "
        "`api://<ENTRA_CLIENT_ID>/Patients.ReadWrite`)"
    ),
}
PUBLIC_PATHS = ("/health",)


def document(version: str, signed_in: bool = False) -> dict[str, Any]:
    """The document; with `signed_in` (AUTH_MODE=entra) every operation but /health declares
    the bearer scheme, so Swagger UI shows its Authorize button."""
    spec = _document(version)
    if signed_in:
        spec["components"]["securitySchemes"] = {"entraBearer": SECURITY_SCHEME}
        spec["security"] = [{"entraBearer": []}]
        for path, item in spec["paths"].items():
            for method, operation in item.items():
                if method == "parameters":
                    continue
                if path in PUBLIC_PATHS:
                    operation["security"] = []
                else:
                    operation["responses"].setdefault("401", _errors("401")["401"])
    return spec


def _document(version: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Patient Registry API",
            "version": version,
            "description": (
                "A json-server 0.17.4 compatible `/patients` API on PostgreSQL 17. Every field of "
                "a record can be filtered: `field=value` (repeat for OR), `field_ne`, "
                "`field_gte`, `field_lte`, `field_like` (case-insensitive regular expression); "
                "dotted paths reach nested fields (`insurance.provider=Aetna`)."
            ),
        },
        "paths": {
            "/patients": {
                "get": _list_operation(),
                "post": _write_operation("createPatient", "Create a patient", 201, item=False),
            },
            "/patients/{id}": {
                "parameters": [_id_parameter()],
                "get": _read_operation(),
                "put": _write_operation("replacePatient", "Replace a patient", 200, item=True),
                "patch": _write_operation(
                    "updatePatient", "Change some fields (shallow merge)", 200, item=True
                ),
                "delete": _delete_operation(),
            },
            "/health": {"get": _health_operation()},
            "/me": {"get": _me_operation()},
            "/users": {"get": _users_operation()},
            "/users/{id}": {"parameters": [_id_parameter()], "patch": _user_change_operation()},
            "/audit": {"get": _audit_operation()},
        },
        "components": {"schemas": _schemas(), "responses": _error_responses()},
    }


def _list_operation() -> dict[str, Any]:
    parameters = [
        {
            "name": name,
            "in": "query",
            "required": False,
            "description": text,
            "schema": {"type": "string", **schema},
        }
        for name, text, schema in QUERY_PARAMETERS
    ]
    parameters.append(
        {
            "name": "filters",
            "in": "query",
            "required": False,
            "description": "Any `field`, `field_ne`, `field_gte`, `field_lte`, `field_like` filter",
            "style": "form",
            "explode": True,
            "schema": {"type": "object", "additionalProperties": {"type": "string"}},
        }
    )
    return {
        "operationId": "listPatients",
        "summary": "List, filter, search, sort and page patients",
        "parameters": parameters,
        "responses": {
            "200": {
                "description": "The matching patients, in list order",
                "headers": _page_headers(
                    "Matches before slicing (with _page, _limit or _end)",
                    "first/prev/next/last pages (with _page)",
                ),
                "content": {
                    JSON: {
                        "schema": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Patient"},
                        }
                    }
                },
            },
            **_errors("400", "500", "503"),
        },
    }


def _read_operation() -> dict[str, Any]:
    return {
        "operationId": "getPatient",
        "summary": "One patient",
        "parameters": [
            {
                "name": "If-None-Match",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
            }
        ],
        "responses": {
            "200": _patient_response("The patient"),
            "304": {"description": "Not modified (If-None-Match matched the ETag)"},
            **_errors("404", "500", "503"),
        },
    }


def _write_operation(operation_id: str, summary: str, status: int, item: bool) -> dict[str, Any]:
    schema = "PatientPatch" if operation_id == "updatePatient" else "PatientInput"
    errors = ("400", "409", "413", "415", "500", "503")
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "requestBody": {
            "required": True,
            "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
        },
        "responses": {
            str(status): _patient_response(summary),
            **_errors(*(("404", "412", *errors) if item else errors)),
        },
    }
    if item:
        operation["parameters"] = [_if_match()]
    return operation


def _delete_operation() -> dict[str, Any]:
    return {
        "operationId": "deletePatient",
        "summary": "Delete a patient",
        "parameters": [_if_match()],
        "responses": {
            "200": {
                "description": "Deleted; the body is an empty object, as json-server's",
                "content": {JSON: {"schema": {"type": "object", "maxProperties": 0}}},
            },
            **_errors("403", "404", "412", "500", "503"),
        },
    }


def _health_operation() -> dict[str, Any]:
    health = {"$ref": "#/components/schemas/Health"}
    return {
        "operationId": "health",
        "summary": "Whether PostgreSQL answers SELECT 1 in time",
        "responses": {
            "200": {"description": "Healthy", "content": {JSON: {"schema": health}}},
            "503": {"description": "Unhealthy", "content": {JSON: {"schema": health}}},
        },
    }


def _me_operation() -> dict[str, Any]:
    return {
        "operationId": "me",
        "summary": "The caller: the signed-in user (or, with AUTH_MODE=none, an anonymous one)",
        "responses": {
            "200": {"description": "The caller", "content": _json_schema("Caller")},
            **_errors("401", "403", "503"),
        },
    }


def _users_operation() -> dict[str, Any]:
    page = [
        ("_page", "1-based page (default 1)"),
        ("_limit", "Page size, 1-500 (default 50)"),
    ]
    return {
        "operationId": "listUsers",
        "summary": "Everyone who signed in, in id order (administrators only)",
        "parameters": [
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": text,
                "schema": {"type": "integer", "minimum": 1},
            }
            for name, text in page
        ],
        "responses": {
            "200": {
                "description": "One page of users",
                "headers": _page_headers("All users", "first/prev/next/last pages"),
                "content": {JSON: {"schema": {"type": "array", "items": _ref("User")}}},
            },
            **_errors("400", "401", "403", "503"),
        },
    }


def _audit_operation() -> dict[str, Any]:
    filters = [
        ("patientId", "Events of one patient record", {"type": "integer", "minimum": 1}),
        ("userId", "Events caused by one user", {"type": "integer", "minimum": 1}),
        ("action", "One kind of event", {"enum": list(audit.ACTIONS)}),
        ("since", "From this time (inclusive): a date or ISO 8601 time, UTC unless given",
         {"type": "string"}),
        ("until", "Before this time (exclusive)", {"type": "string"}),
        ("_page", "1-based page (default 1)", {"type": "integer", "minimum": 1}),
        ("_limit", "Page size, 1-500 (default 50)", {"type": "integer", "minimum": 1}),
    ]  # fmt: skip
    return {
        "operationId": "listAuditEvents",
        "summary": "The audit trail, newest first (administrators only)",
        "parameters": [
            {"name": name, "in": "query", "required": False, "description": text, "schema": schema}
            for name, text, schema in filters
        ],
        "responses": {
            "200": {
                "description": "One page of events",
                "headers": _page_headers("Matching events", "first/prev/next/last pages"),
                "content": {JSON: {"schema": {"type": "array", "items": _ref("AuditEvent")}}},
            },
            **_errors("400", "401", "403", "503"),
        },
    }


def _user_change_operation() -> dict[str, Any]:
    return {
        "operationId": "updateUser",
        "summary": "Grant or take away the admin right (administrators only)",
        "requestBody": {"required": True, "content": _json_schema("UserChange")},
        "responses": {
            "200": {"description": "The user as stored now", "content": _json_schema("User")},
            "409": {
                "description": "Your own admin right, or one given by ADMIN_OBJECT_IDS",
                "content": _json_schema("Error"),
            },
            **_errors("400", "401", "403", "404", "415", "503"),
        },
    }


def _page_headers(total: str, links: str) -> dict[str, Any]:
    text = {"type": "string"}
    return {
        "X-Total-Count": {"description": total, "schema": text},
        "Link": {"description": links, "schema": text},
    }


def _json_schema(name: str) -> dict[str, Any]:
    return {JSON: {"schema": _ref(name)}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _user_schemas() -> dict[str, Any]:
    text = {"type": ["string", "null"]}
    guid = {"type": "string", "format": "uuid"}
    moment = {"type": "string", "format": "date-time"}
    return {
        "User": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "tenantId": guid,
                "objectId": guid,
                "email": text,
                "displayName": text,
                "isAdmin": {"type": "boolean", "description": "Set by an administrator"},
                "hasAdminRole": {
                    "type": "boolean",
                    "description": "The last token carried the admin app role (Registry.Admin)",
                },
                "createdAt": moment,
                "updatedAt": moment,
                "lastSeenAt": moment,
            },
        },
        "AuditEvent": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "occurredAt": moment,
                "action": {"enum": list(audit.ACTIONS)},
                "patientId": {"type": ["integer", "null"]},
                "user": {
                    "description": "Who made the change; null when anonymous or an import",
                    "type": ["object", "null"],
                    "properties": {"id": {"type": "integer"}, "displayName": text},
                },
                "requestId": text,
                "changes": {
                    "description": "Each changed field: {before, after}",
                    "type": "object",
                    "additionalProperties": {"type": "object"},
                },
                "before": {"type": ["object", "null"], "description": "The record before"},
                "after": {"type": ["object", "null"], "description": "The record after"},
                "importRun": {
                    "description": "For an import: its run id, mode, source file and counts",
                    "type": "object",
                },
            },
        },
        "UserChange": {
            "type": "object",
            "required": ["isAdmin"],
            "properties": {"isAdmin": {"type": "boolean"}},
            "additionalProperties": False,
        },
        "Caller": {
            "type": "object",
            "properties": {
                "id": {"type": ["integer", "null"]},
                "tenantId": {"type": ["string", "null"]},
                "objectId": {"type": ["string", "null"]},
                "email": text,
                "displayName": text,
                "isAdmin": {"type": "boolean"},
                "anonymous": {"type": "boolean"},
                "permissions": {
                    "type": "array",
                    "items": {
                        "enum": [
                            "patients:read",
                            "patients:write",
                            "patients:delete",
                            "users:admin",
                        ]
                    },
                },
            },
        },
    }


def _schemas() -> dict[str, Any]:
    text = {"type": ["string", "null"], "maxLength": patients.MAX_TEXT_LENGTH}
    fields: dict[str, Any] = {
        "patientID": {"type": "string", "minLength": 1, "maxLength": patients.MAX_TEXT_LENGTH},
        "name": {"type": "string", "minLength": 1, "maxLength": patients.MAX_TEXT_LENGTH},
        "age": {"type": ["integer", "null"], "minimum": 0, "maximum": patients.MAX_AGE},
        "gender": text,
        "medicalCondition": text,
        "lastVisit": {"type": ["string", "null"], "format": "date"},
    }
    identifier = {"type": "integer", "minimum": 1, "maximum": patients.MAX_ID}
    return {
        **_user_schemas(),
        "Patient": {
            "type": "object",
            "required": ["id", *patients.REQUIRED],
            "properties": {"id": identifier, **fields},
            "additionalProperties": True,
        },
        "PatientInput": {
            "type": "object",
            "description": "Fields that are not listed are stored and returned verbatim",
            "required": list(patients.REQUIRED),
            "properties": {
                "id": {
                    "description": "Optional; assigned when left out or falsy",
                    "oneOf": [
                        {"type": "integer", "minimum": 1, "maximum": patients.MAX_CHOSEN_ID},
                        {"enum": [0, None, False, ""]},
                    ],
                },
                **fields,
            },
            "additionalProperties": True,
        },
        "PatientPatch": {
            "type": "object",
            "properties": fields,
            "additionalProperties": True,
        },
        "Health": {
            "type": "object",
            "required": ["status", "database", "timestamp"],
            "properties": {
                "status": {"enum": ["healthy", "unhealthy"]},
                "database": {"enum": ["connected", "disconnected"]},
                "timestamp": {"type": "string", "format": "date-time"},
                "import": {
                    "enum": ["running"],
                    "description": "An import holds the patients table (requests may get 503 "
                    "IMPORT_RUNNING)",
                },
                "pool": {
                    "type": "object",
                    "description": "This instance's database connections: open, the most it "
                    "opens, open and free, and requests waiting for one (past "
                    "DB_TIMEOUT_SECONDS of waiting, 503 SERVER_BUSY)",
                    "properties": {
                        name: {"type": "integer", "minimum": 0}
                        for name in ("size", "max", "idle", "waiting")
                    },
                },
            },
        },
        "Error": {
            "type": "object",
            "required": ["detail", "message", "error_code"],
            "properties": {
                "detail": {"type": "string"},
                "message": {
                    "type": "string",
                    "description": "detail with each field's problem: one text to show",
                },
                "error_code": {"enum": list(ERROR_CODES)},
                "field_errors": {"type": "object", "additionalProperties": {"type": "string"}},
                "request_id": {"type": "string"},
            },
        },
    }


def _error_responses() -> dict[str, Any]:
    error = {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}
    return {status: {"description": text, "content": error} for status, text in ERRORS.items()}


def _errors(*statuses: str) -> dict[str, Any]:
    return {status: {"$ref": f"#/components/responses/{status}"} for status in statuses}


def _patient_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {"ETag": {"description": "Use with If-Match", "schema": {"type": "string"}}},
        "content": {JSON: {"schema": {"$ref": "#/components/schemas/Patient"}}},
    }


def _id_parameter() -> dict[str, Any]:
    return {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1, "maximum": patients.MAX_ID},
    }


def _if_match() -> dict[str, Any]:
    return {
        "name": "If-Match",
        "in": "header",
        "required": False,
        "description": "The ETag last read; the write is refused with 412 if it changed",
        "schema": {"type": "string"},
    }
