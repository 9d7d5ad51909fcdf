"""OpenAPI additions: every operation documents the one error shape it may answer with."""

from drf_spectacular.contrib.django_filters import DjangoFilterExtension

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
            # DRF reads an empty `?format=` as the default renderer.
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query" and parameter.get("name") == "format":
                    parameter["allowEmptyValue"] = True
            errors = dict(COMMON_ERRORS)
            if "requestBody" in operation:
                errors.update(BODY_ERRORS)
            for code, description in errors.items():
                operation["responses"].setdefault(code, {"description": description, "content": error_content})
            # Errors an operation declares itself (409 on overlapping config versions…) in the same shape.
            for code, response in operation["responses"].items():
                if str(code) >= "400" and isinstance(response, dict) and "content" not in response:
                    response["content"] = error_content
    return result


class EmptyMeansNoFilter(DjangoFilterExtension):
    """django-filter reads `?channel=` (an empty value) as no filter, as an HTML form sends it: say so.

    Without `allowEmptyValue` the schema claims an empty `from=` is invalid, and the server answers 200.
    """

    priority = 1  # over drf-spectacular's own extension for the same backend

    def get_schema_operation_parameters(self, auto_schema, *args, **kwargs):
        parameters = super().get_schema_operation_parameters(auto_schema, *args, **kwargs)
        for parameter in parameters:
            if parameter.get("in") == "query" and not parameter.get("required"):
                parameter["allowEmptyValue"] = True
        return parameters
