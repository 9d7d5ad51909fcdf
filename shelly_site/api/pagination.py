"""Cursor pagination for growing tables: a page never shifts when rows are added."""

from rest_framework.pagination import CursorPagination


class ApiCursorPagination(CursorPagination):
    """Base for every paginated list. Subclass and set `ordering` (unique, indexed)."""

    page_size = 500
    page_size_query_param = "page_size"
    max_page_size = 5000
    ordering = "-id"
