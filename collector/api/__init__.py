"""REST API `/api/v1/` (§9) and the HTTP batch ingest (§4.2).

Building blocks other apps reuse for their endpoints:

- `authentication.ApiTokenAuthentication` (`Authorization: Token|Bearer <raw>`)
  and DRF's session authentication (staff on the dashboard);
- `permissions.ApiReadAccess` (the default: staff or API token, safe methods
  only) and `permissions.ApiWriteAccess` (endpoints that accept writes: token
  with `can_write` or a superuser);
- `errors.api_exception_handler`: the one error shape
  `{"error": {"code", "message", "details"?}}`;
- `pagination.ApiCursorPagination`, `csv_export.stream_csv`.
"""
