"""OpenAPI additions: every operation documents the one error shape it may answer with."""

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {},
            },
            "required": ["code", "message"],
        }
    },
    "required": ["error"],
}
COMMON_ERRORS = {
    "400": "Invalid request (details per field).",
    "401": "Missing or invalid credentials.",
    "403": "Authenticated, but not allowed.",
    "404": "Not found.",
    "405": "Method not allowed.",
    "406": "No acceptable response format.",
    "429": "Too many requests (see Retry-After).",
    "500": "Internal error (no details are disclosed).",
}
BODY_ERRORS = {
    "413": "Request body or batch too large.",
    "415": "Unsupported content type.",
}


def add_error_responses(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    error_content = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for methods in result.get("paths", {}).values():
        for operation in methods.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            errors = dict(COMMON_ERRORS)
            if "requestBody" in operation:
                errors.update(BODY_ERRORS)
            for code, description in errors.items():
                operation["responses"].setdefault(code, {"description": description, "content": error_content})
    return result
