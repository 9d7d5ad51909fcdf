"""API plumbing every app's endpoints share (STYLE.md: project-wide plumbing lives in `shelly_site/`).

- `authentication.ApiTokenAuthentication` (`Authorization: Token|Bearer <raw>`),
  `authentication.IngestKeyAuthentication` (`X-API-Key`) and DRF's session
  authentication (staff on the dashboard);
- `permissions.ApiReadAccess` (the default: staff or API token, safe methods
  only) and `permissions.ApiWriteAccess` (token with `can_write` or a superuser);
- `errors.api_exception_handler`: the one error shape `{"error": {"code", "message", "details"?}}`;
- `pagination.ApiCursorPagination`, `filters` (ids and ISO times), `throttling`;
- `csv_export.stream_csv` and `csv_export.CSVExportMixin` (`?format=csv`);
- `schema` (the error responses every operation documents) and `urls` (the root and the docs).

An app keeps only its own endpoints (`collector/api/`, `configs/api.py`, `alerts/api.py`).
"""
